"""The parameters of each kind of operation: what the planner promises the runtime.

One frozen type per `Kind`, named after it (`Kind.LINK_VETH`: `LinkVethParams`),
its `KIND` saying which.  The planner builds them, the handler of the kind
reads them (`runtime/ops/`), `netc plan` prints them: the JSON form is the
fields by name, in order (`JsonData`), so the plan's format is this module.

Values are as the plan has always carried them: addresses and CIDRs as
text (the runtime compares routes as rtnl spells them, without parsing),
iptables rules as tuples of arguments (`compiler.planner.iptables.rule`),
lists as tuples.  Strings may hold placeholders (`{ipv4.cidr}`) until the
runtime fills them in (`Operation.resolved`).
"""

from __future__ import annotations

from typing import ClassVar

from compiler.datatypes import frozen
from compiler.planner.context import PortMapping
from compiler.planner.iptables import Rule
from compiler.planner.ops import JsonData, Kind, Params, omitted_at_default

# the attachment's record and the node's kernel


@frozen
class StateRecordParams(Params):
    """The attachment record's file."""

    KIND: ClassVar[Kind] = Kind.STATE_RECORD
    path: str


@frozen
class KernelModuleParams(Params):
    """A kernel module, and a /proc/sys path that exists once it is loaded."""

    KIND: ClassVar[Kind] = Kind.KERNEL_MODULE
    name: str
    probe: str


@frozen
class SysctlParams(Params):
    """A /proc/sys setting (`path` under /proc/sys) and its value.

    An `optional` one is skipped where the node does not have it (IPv6 off at boot).
    """

    KIND: ClassVar[Kind] = Kind.SYSCTL
    path: str
    value: str
    optional: bool = omitted_at_default(False)


# links, addresses, routes


@frozen
class LinkBridgeParams(Params):
    """A bridge with its MTU (None: the kernel's) and promiscuity."""

    KIND: ClassVar[Kind] = Kind.LINK_BRIDGE
    name: str
    mtu: int | None
    promiscuous: bool


@frozen
class LinkVethParams(Params):
    """The pod's veth pair: `name` on the node, `peer` in the pod's namespace `netns`."""

    KIND: ClassVar[Kind] = Kind.LINK_VETH
    name: str
    peer: str
    netns: str | None
    mtu: int | None


@frozen
class LinkMasterParams(Params):
    """A link enslaved to a bridge."""

    KIND: ClassVar[Kind] = Kind.LINK_MASTER
    dev: str
    master: str


@frozen
class LinkHairpinParams(Params):
    """Hairpin mode of a bridge port."""

    KIND: ClassVar[Kind] = Kind.LINK_HAIRPIN
    dev: str
    on: bool


@frozen
class LinkUpParams(Params):
    """A link set up, where the operation says (node or pod)."""

    KIND: ClassVar[Kind] = Kind.LINK_UP
    dev: str


@frozen
class LinkIfbParams(Params):
    """An ifb device, in the link group of the pod's host `veth`."""

    KIND: ClassVar[Kind] = Kind.LINK_IFB
    name: str
    veth: str


@frozen
class AddressParams(Params):
    """An address (`ip/prefix`) on a link."""

    KIND: ClassVar[Kind] = Kind.ADDRESS
    dev: str
    address: str


@frozen
class RouteParams(Params):
    """A route in the pod: to `dst` via a gateway, through `dev`."""

    KIND: ClassVar[Kind] = Kind.ROUTE
    dst: str
    via: str
    dev: str


@frozen
class NeighbourForgetParams(Params):
    """The node's neighbour entry of an address on a link, to forget."""

    KIND: ClassVar[Kind] = Kind.NEIGHBOUR_FORGET
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


@frozen
class IpamAddressParams(Params):
    """One address of a family, reserved host-local style, bound to `{binds.*}`.

    `range_set` is the range set's index (host-local's file names carry it);
    `requested` the address the pod asked for, if any.
    """

    KIND: ClassVar[Kind] = Kind.IPAM_ADDRESS
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


@frozen
class IptablesNodeParams(Params):
    """A network's chains in one table of one family, and the jumps into them.

    `dispatch` chains hold the pods' jumps: created empty, never flushed.
    `state` is the network's state directory (the raw table's guard says it).
    """

    KIND: ClassVar[Kind] = Kind.IPTABLES_NODE
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


@frozen
class IptablesAttachmentParams(Params):
    """A pod's chain and the jump to it from the network's `dispatch` chain.

    `rules` None: not known (a DEL without record); the chain goes all the same.
    """

    KIND: ClassVar[Kind] = Kind.IPTABLES_ATTACHMENT
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
        return ((self.protocol, self.port) == (other.protocol, other.port)
                and (not self.address or not other.address or self.address == other.address))

    def describe(self) -> str:
        """The claim as a message says it: `8080/tcp on 198.18.0.1`."""
        return f"{self.port}/{self.protocol}" + (f" on {self.address}" if self.address else "")


@frozen
class HostportClaimParams(Params):
    """The node-wide claims of an attachment's host ports, in directory `dir`.

    `claims` None: not known (a DEL without record): every claim of `owner` goes.
    """

    KIND: ClassVar[Kind] = Kind.HOSTPORT_CLAIM
    dir: str
    claims: tuple[HostportClaim, ...] | None
    owner: str


@frozen
class ConntrackFlushParams(Params):
    """Conntrack entries of a protocol to some ports, to forget."""

    KIND: ClassVar[Kind] = Kind.CONNTRACK_FLUSH
    family: int
    protocol: str
    ports: tuple[int, ...]


# traffic shaping


@frozen
class TcTbfParams(Params):
    """A root TBF: rate in bytes/s, bucket and queue in bytes."""

    KIND: ClassVar[Kind] = Kind.TC_TBF
    dev: str
    rate: int
    burst: int
    limit: int


@frozen
class TcIngressParams(Params):
    """The ingress qdisc of a link."""

    KIND: ClassVar[Kind] = Kind.TC_INGRESS
    dev: str


@frozen
class TcRedirectParams(Params):
    """Everything arriving on `dev` redirected to `to`."""

    KIND: ClassVar[Kind] = Kind.TC_REDIRECT
    dev: str
    to: str


# a node's routes to its peers


@frozen
class LinkVxlanParams(Params):
    """The cluster's VXLAN device: its tunnel, MTU, MAC and the owner's alias."""

    KIND: ClassVar[Kind] = Kind.LINK_VXLAN
    name: str
    vni: int
    port: int
    local: str
    mtu: int
    mac: str
    alias: str


@frozen
class RouteNodeParams(Params):
    """A route to a peer's pods carrying netc's `protocol`: via a gateway, or onlink via `dev`."""

    KIND: ClassVar[Kind] = Kind.ROUTE_NODE
    dst: str
    via: str
    dev: str | None
    onlink: bool
    protocol: int


@frozen
class NeighbourParams(Params):
    """A permanent neighbour entry: `address` is at `lladdr` on `dev`."""

    KIND: ClassVar[Kind] = Kind.NEIGHBOUR
    dev: str
    address: str
    lladdr: str


@frozen
class FdbParams(Params):
    """A forwarding entry of a VXLAN device: frames for `lladdr` go to underlay `dst`."""

    KIND: ClassVar[Kind] = Kind.FDB
    dev: str
    lladdr: str
    dst: str


@frozen
class NodePruneParams(Params):
    """What netc owns for a cluster and may keep; the rest within its pod CIDRs goes.

    Routes of `protocol` to `routes`, neighbours and forwarding entries on
    `device` (None: no tunnel), links carrying `alias`.
    """

    KIND: ClassVar[Kind] = Kind.NODE_PRUNE
    cluster: str
    pod_cidrs: tuple[str, ...]
    protocol: int
    routes: tuple[str, ...]
    device: str | None
    neighbours: tuple[str, ...]
    fdb: tuple[str, ...]
    alias: str
