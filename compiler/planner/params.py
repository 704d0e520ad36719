"""The parameters of each kind of operation: what the planner promises the runtime.

One frozen type per `Kind`, named after it and made its kind's parameters by
`params_of` (`@params_of(Kind.LINK_VETH) class LinkVethParams`), which sets its
`KIND`.  The planner builds them, the handler of the kind reads them
(`runtime/ops/`), `netc plan` prints them: the JSON form is the fields by
name, in order (`JsonData`), so the plan's format is this module.

Values are as the plan has always carried them: addresses and CIDRs as
text (the runtime compares routes as rtnl spells them, without parsing),
iptables rules as tuples of arguments (`compiler.planner.iptables.rule`),
lists as tuples.  Strings may hold placeholders (`{ipv4.cidr}`) until the
runtime fills them in (`Operation.resolved`).
"""

from __future__ import annotations

from compiler.datatypes import frozen
from compiler.planner.context import PortMapping
from compiler.planner.iptables import Rule
from compiler.planner.ops import JsonData, Kind, Params, omitted_at_default, params_of

# the attachment's record and the node's kernel


@params_of(Kind.STATE_RECORD)
class StateRecordParams(Params):
    """The attachment record's file."""

    path: str


@params_of(Kind.KERNEL_MODULE)
class KernelModuleParams(Params):
    """A kernel module, and a /proc/sys path that exists once it is loaded."""

    name: str
    probe: str


@params_of(Kind.SYSCTL)
class SysctlParams(Params):
    """A /proc/sys setting (`path` under /proc/sys) and its value.

    An `optional` one is skipped where the node does not have it (IPv6 off at boot).
    """

    path: str
    value: str
    optional: bool = omitted_at_default(False)


# links, addresses, routes


@params_of(Kind.LINK_BRIDGE)
class LinkBridgeParams(Params):
    """A bridge with its MTU (None: the kernel's) and promiscuity."""

    name: str
    mtu: int | None
    promiscuous: bool


@params_of(Kind.LINK_VETH)
class LinkVethParams(Params):
    """The pod's veth pair: `name` on the node, `peer` in the pod's namespace `netns`."""

    name: str
    peer: str
    netns: str | None
    mtu: int | None


@params_of(Kind.LINK_MASTER)
class LinkMasterParams(Params):
    """A link enslaved to a bridge."""

    dev: str
    master: str


@params_of(Kind.LINK_HAIRPIN)
class LinkHairpinParams(Params):
    """Hairpin mode of a bridge port."""

    dev: str
    on: bool


@params_of(Kind.LINK_UP)
class LinkUpParams(Params):
    """A link set up, where the operation says (node or pod)."""

    dev: str


@params_of(Kind.LINK_IFB)
class LinkIfbParams(Params):
    """An ifb device, in the link group of the pod's host `veth`."""

    name: str
    veth: str


@params_of(Kind.ADDRESS)
class AddressParams(Params):
    """An address (`ip/prefix`) on a link."""

    dev: str
    address: str


@params_of(Kind.ROUTE)
class RouteParams(Params):
    """A route in the pod: to `dst` via a gateway, through `dev`."""

    dst: str
    via: str
    dev: str


@params_of(Kind.NEIGHBOUR_FORGET)
class NeighbourForgetParams(Params):
    """The node's neighbour entry of an address on a link, to forget."""

    dev: str
    address: str


# addresses of the pod


@frozen
class AddressRange(JsonData):
    """One range of a range set: its subnet, first and last address, gateway."""

    subnet: str
    start: str
    end: str
    gateway: str


@params_of(Kind.IPAM_ADDRESS)
class IpamAddressParams(Params):
    """One address of a family, reserved host-local style, bound to `{binds.*}`.

    `range_set` is the range set's index (host-local's file names carry it);
    `requested` the address the pod asked for, if any.
    """

    family: int
    binds: str
    range_set: int
    ranges: tuple[AddressRange, ...]
    requested: str | None
    data_dir: str
    network: str
    state_dir: str


# iptables


@frozen
class NatChain(JsonData):
    """A chain a network owns, declared with all its rules."""

    name: str
    rules: tuple[Rule, ...]


@frozen
class NatJump(JsonData):
    """A rule in a built-in chain jumping to a network's chain; `first`: inserted at its head."""

    chain: str
    rule: Rule
    first: bool = omitted_at_default(False)


@params_of(Kind.IPTABLES_NODE)
class IptablesNodeParams(Params):
    """A network's chains in one table of one family, and the jumps into them.

    `dispatch` chains hold the pods' jumps: created empty, never flushed.
    `state` is the network's state directory (the raw table's guard says it).
    """

    family: int
    table: str
    chains: tuple[NatChain, ...]
    dispatch: tuple[str, ...]
    jumps: tuple[NatJump, ...]
    state: str | None = omitted_at_default(None)

    @property
    def chain_names(self) -> list[str]:
        """Every chain of the network in this table: its own, then the dispatch chains."""
        return [*(c.name for c in self.chains), *self.dispatch]


@params_of(Kind.IPTABLES_ATTACHMENT)
class IptablesAttachmentParams(Params):
    """A pod's chain and the jump to it from the network's `dispatch` chain.

    `rules` None: not known (a DEL without record); the chain goes all the same.
    """

    family: int
    table: str
    chain: str
    rules: tuple[Rule, ...] | None
    dispatch: str
    jump: Rule


# host ports


@frozen
class HostportClaim:
    """A host port an attachment holds on the node: a protocol's port, on one address or all.

    Its text -- `tcp:8080`, or `tcp:8080@198.18.0.1` for one address -- names
    its claim file and is its JSON form.  Two claims of a protocol's port
    conflict unless both name an address, and different ones.
    """

    protocol: str
    port: int
    address: str | None = None

    @classmethod
    def of(cls, mapping: PortMapping) -> HostportClaim:
        """What a port mapping claims."""
        address = str(mapping.host_ip) if mapping.host_ip else None
        return cls(mapping.protocol, mapping.host_port, address)

    @classmethod
    def parse(cls, text: str) -> HostportClaim | None:
        """The claim a file name spells, or None for any other name (the lock, a temporary)."""
        protocol, colon, rest = text.partition(":")
        port, at, address = rest.partition("@")
        if not colon or not protocol.isalpha() or not port.isdigit() or (at and not address):
            return None
        return cls(protocol, int(port), address or None)

    def __str__(self) -> str:
        return f"{self.protocol}:{self.port}" + (f"@{self.address}" if self.address else "")

    def to_json(self) -> str:
        """The machine form: the claim's text."""
        return str(self)

    def conflicts(self, other: HostportClaim) -> bool:
        """Whether the two cannot both be held."""
        return (self.protocol, self.port) == (other.protocol, other.port) and (
            not self.address or not other.address or self.address == other.address
        )

    def describe(self) -> str:
        """The claim as a message says it: `8080/tcp on 198.18.0.1`."""
        return f"{self.port}/{self.protocol}" + (f" on {self.address}" if self.address else "")


@params_of(Kind.HOSTPORT_CLAIM)
class HostportClaimParams(Params):
    """The node-wide claims of an attachment's host ports, in directory `dir`.

    `claims` None: not known (a DEL without record): every claim of `owner` goes.
    """

    dir: str
    claims: tuple[HostportClaim, ...] | None
    owner: str


@params_of(Kind.CONNTRACK_FLUSH)
class ConntrackFlushParams(Params):
    """Conntrack entries of a protocol to some ports, to forget."""

    family: int
    protocol: str
    ports: tuple[int, ...]


# traffic shaping


@params_of(Kind.TC_TBF)
class TcTbfParams(Params):
    """A root TBF: rate in bytes/s, bucket and queue in bytes."""

    dev: str
    rate: int
    burst: int
    limit: int


@params_of(Kind.TC_INGRESS)
class TcIngressParams(Params):
    """The ingress qdisc of a link."""

    dev: str


@params_of(Kind.TC_REDIRECT)
class TcRedirectParams(Params):
    """Everything arriving on `dev` redirected to `to`."""

    dev: str
    to: str


# a node's routes to its peers


@params_of(Kind.LINK_VXLAN)
class LinkVxlanParams(Params):
    """The cluster's VXLAN device: its tunnel, MTU, MAC and the owner's alias."""

    name: str
    vni: int
    port: int
    local: str
    mtu: int
    mac: str
    alias: str


@params_of(Kind.ROUTE_NODE)
class RouteNodeParams(Params):
    """A route to a peer's pods carrying netc's `protocol`: via a gateway, or onlink via `dev`."""

    dst: str
    via: str
    dev: str | None
    onlink: bool
    protocol: int


@params_of(Kind.NEIGHBOUR)
class NeighbourParams(Params):
    """A permanent neighbour entry: `address` is at `lladdr` on `dev`."""

    dev: str
    address: str
    lladdr: str


@params_of(Kind.FDB)
class FdbParams(Params):
    """A forwarding entry of a VXLAN device: frames for `lladdr` go to underlay `dst`."""

    dev: str
    lladdr: str
    dst: str


@params_of(Kind.NODE_PRUNE)
class NodePruneParams(Params):
    """What netc owns for a cluster and may keep; the rest within its pod CIDRs goes.

    Routes of `protocol` to `routes`, neighbours and forwarding entries on
    `device` (None: no tunnel), links carrying `alias`.
    """

    cluster: str
    pod_cidrs: tuple[str, ...]
    protocol: int
    routes: tuple[str, ...]
    device: str | None
    neighbours: tuple[str, ...]
    fdb: tuple[str, ...]
    alias: str
