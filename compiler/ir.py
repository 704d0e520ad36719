"""The intermediate representation: one validated, normalised pod network.

The IR is what every back end reads -- the conflist emitters, the planner and,
through the conflist, the runtime plugin -- so it holds facts, not syntax:
addresses are `ipaddress` objects, rates are bits per second, defaults are
applied, and every object keeps the `Span` it came from.  It is immutable and
free of lark and click: the runtime imports it on every CNI call.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal, TypeVar

from compiler.datatypes import field, frozen
from compiler.source import Span
from compiler.versions import DEFAULT_CNI_VERSION

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def mac_text(octets: bytes | bytearray) -> str:
    """Six bytes as aa:bb:cc:dd:ee:ff, the one spelling of a MAC in plans, records and output."""
    return ":".join(f"{octet:02x}" for octet in octets)


def mac_bytes(mac: str) -> bytes:
    """aa:bb:cc:dd:ee:ff as six bytes."""
    return bytes(int(part, 16) for part in mac.split(":"))


def family_key(family: int) -> str:
    """`ipv4` or `ipv6`: how plans, results and tools name an address family."""
    return f"ipv{family}"


def subnet_within(inner: IPNetwork, outer: IPNetwork) -> bool:
    """Whether `inner` lies inside `outer`; never across families (`ipaddress` would raise)."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


DEFAULT_BRIDGE = "cni0"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
DEFAULT_STATE_DIR = "/run/netc"

MIN_RATE = 1000
"""Slowest accepted rate in bit/s; containerd refuses pods below 1k as well."""
MAX_RATE = 10**15
"""Fastest accepted rate in bit/s (1P); containerd's upper bound."""


@frozen
class Bridge:
    """A Linux bridge main plugin: pods get a veth pair with one end on the bridge."""

    name: str = DEFAULT_BRIDGE
    mtu: int | None = None
    gateway: bool = False
    masquerade: bool = False
    hairpin: bool = False
    promiscuous: bool = False
    span: Span | None = None


@frozen
class Plugin:
    """A plugin netc does not model (calico, flannel, firewall, ...): its options pass through."""

    type: str
    options: dict[str, Any]
    span: Span | None = None


@frozen
class Subnet:
    """One pod subnet with the part of it handed to pods and the gateway address."""

    cidr: IPNetwork
    range_start: IPAddress
    range_end: IPAddress
    gateway: IPAddress
    span: Span | None = None
    explicit_range: bool = False
    explicit_gateway: bool = False

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.cidr.version

    def hands_out(self, address: IPAddress) -> bool:
        """Whether pods may get `address` from here: in the range, not the gateway.

        Never an address of the other family, which `ipaddress` refuses to compare.
        """
        return (
            address.version == self.family
            and address != self.gateway
            and int(self.range_start) <= int(address) <= int(self.range_end)
        )


@frozen
class PodRoute:
    """A route given to pods; without `via` it goes through the subnet's gateway."""

    dst: IPNetwork
    via: IPAddress | None = None
    span: Span | None = None


@frozen
class Dns:
    """Resolver settings returned to the runtime in the CNI result."""

    nameservers: tuple[IPAddress, ...] = ()
    domain: str | None = None
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    span: Span | None = None

    def cni(self) -> dict[str, Any]:
        """The CNI `dns` object (nameservers, domain, search, options; empty ones left out)."""
        document: dict[str, Any] = {}
        if self.nameservers:
            document["nameservers"] = [str(a) for a in self.nameservers]
        if self.domain:
            document["domain"] = self.domain
        if self.search:
            document["search"] = list(self.search)
        if self.options:
            document["options"] = list(self.options)
        return document


@frozen
class Ipam:
    """host-local style address management: one address per family for each pod."""

    subnets: tuple[Subnet, ...]
    routes: tuple[PodRoute, ...] = ()
    dns: Dns | None = None
    data_dir: str = DEFAULT_DATA_DIR
    span: Span | None = None
    cluster: str | None = None
    """The cluster whose node subnets the pods draw from (`ipam { cluster NAME }`)."""
    static_ips: bool = False
    """Whether the runtime may ask for an address (the `ips` capability, `podman run --ip`)."""
    pod_cidrs: tuple[IPNetwork, ...] = ()
    """The cluster's pod CIDRs, once the network is built for one node: traffic to them is
    pod-to-pod and keeps its source address (no masquerade)."""
    node_local: bool = False
    """Whether every node may hand out these same subnets (`node-local`): pod addresses are
    then unique only within a node, which a cluster-wide rollout must be told."""

    def families(self) -> tuple[int, ...]:
        """The address families pods get, IPv4 first."""
        return tuple(sorted({s.family for s in self.subnets}))

    def subnets_of(self, family: int) -> tuple[Subnet, ...]:
        """The subnets of one family: together they form one host-local range set."""
        return tuple(s for s in self.subnets if s.family == family)


PROTOCOLS = ("tcp", "udp", "sctp")


@frozen
class PortRule:
    """`allow`/`deny` entry of a hostPort policy: a port range, optionally one protocol."""

    verb: str
    first: int
    last: int
    protocol: str | None = None
    span: Span | None = None

    def covers(self, port: int, protocol: str) -> bool:
        """Whether a mapping of `port`/`protocol` falls under this rule."""
        return self.first <= port <= self.last and self.protocol in (None, protocol)

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
        suffix = f"/{self.protocol}" if self.protocol else ""
        return f"{self.verb} {ports}{suffix}"


@frozen
class HostPort:
    """hostPort support (the portMappings capability) and the policy mappings must meet."""

    allow: tuple[PortRule, ...] = ()
    deny: tuple[PortRule, ...] = ()
    host_ips: tuple[IPAddress, ...] = ()
    snat: bool = True
    span: Span | None = None


@frozen
class Rate:
    """A rate in bit/s and an optional bucket size in bits."""

    rate: int
    burst: int | None = None
    span: Span | None = None


@frozen
class Limits:
    """Per-direction limits; ingress is traffic to the pod, egress traffic from it."""

    ingress: Rate | None = None
    egress: Rate | None = None
    span: Span | None = None

    def direction(self, name: Direction) -> Rate | None:
        """The limit for 'ingress' or 'egress'."""
        return of_direction(name, self.ingress, self.egress)


Direction = Literal["ingress", "egress"]
DIRECTIONS: tuple[Direction, ...] = ("ingress", "egress")
T = TypeVar("T")


def of_direction(direction: Direction, ingress: T, egress: T) -> T:
    """The half of a per-direction pair that `direction` names (ingress: to the pod)."""
    return ingress if direction == "ingress" else egress


@frozen
class NamespacePolicy:
    """Bandwidth defaults and maximums for pods of some Kubernetes namespaces."""

    names: tuple[str, ...]
    default: Limits | None = None
    max: Limits | None = None
    span: Span | None = None


@frozen
class Bandwidth:
    """Traffic shaping: static limits, or per-pod requests within defaults and maximums."""

    limit: Limits | None = None
    default: Limits | None = None
    max: Limits | None = None
    namespaces: tuple[NamespacePolicy, ...] = ()
    span: Span | None = None

    def namespace(self, name: str | None) -> NamespacePolicy | None:
        """The policy block naming this Kubernetes namespace, if any."""
        return next((p for p in self.namespaces if name in p.names), None)


@frozen
class Network:
    """One pod network: what a conflist describes and what a pod attaches to."""

    name: str
    cni_version: str = DEFAULT_CNI_VERSION
    priority: int = 10
    bridge: Bridge | None = None
    plugin: Plugin | None = None
    ipam: Ipam | None = None
    hostport: HostPort | None = None
    bandwidth: Bandwidth | None = None
    state_dir: str = DEFAULT_STATE_DIR
    span: Span | None = None
    sources: tuple[str, ...] = field(default=(), metadata={"portable": False})
    """The files the network was compiled from (for `netc plan`); not part of its meaning."""
    chain: tuple[Plugin, ...] = ()
    """Plugins run after netc's own (firewall, tuning, ...), options passed through."""
    conflist: dict[str, Any] = field(default_factory=dict)
    """Keys written at the top of the conflist as they are (`disableCheck`, `disableGC`)."""


ROUTING_MODES = ("host-gw", "vxlan", "mixed")
DEFAULT_NODE_BLOCKS = {4: 24, 6: 64}
"""Each node's share of a pod CIDR, as kube-controller-manager's --node-cidr-mask-size."""
DEFAULT_VXLAN_DEVICE = "netc.1"
VXLAN_OVERHEAD = {4: 50, 6: 70}
"""Bytes VXLAN adds to a frame: outer IP (20 or 40), UDP 8, VXLAN 8, inner Ethernet 14."""


@frozen
class Routing:
    """How pods on different nodes reach each other.

    `host-gw`: a route per peer to its pod subnet through its underlay
    address (the nodes share an L2 segment).  `vxlan`: a VXLAN device per
    node and, per peer, a route, a neighbour and a forwarding entry.
    `mixed`: host-gw to peers on the node's own underlay subnet, VXLAN to
    the others (flannel's DirectRouting).
    """

    mode: str = "host-gw"
    vni: int = 1
    port: int = 8472
    device: str = DEFAULT_VXLAN_DEVICE
    underlay_mtu: int = 1500
    span: Span | None = None

    @property
    def tunnels(self) -> bool:
        """Whether some peers are reached through VXLAN."""
        return self.mode != "host-gw"


@frozen
class Node:
    """A node of a cluster: its Kubernetes name, underlay addresses and pod subnets."""

    name: str
    addresses: tuple[IPInterface, ...]
    subnets: tuple[IPNetwork, ...]
    block: int | None = None
    span: Span | None = None

    def address(self, family: int) -> IPInterface | None:
        """The node's first underlay address of a family."""
        return next((a for a in self.addresses if a.version == family), None)

    def subnet(self, family: int) -> IPNetwork | None:
        """The node's pod subnet of a family."""
        return next((s for s in self.subnets if s.version == family), None)


MEMBERSHIP_SOURCES = ("static", "etcd", "kubernetes")
DEFAULT_LEASE = 60
"""Seconds a member's claim outlives its agent (`lease 60s`)."""
DEFAULT_ANNOTATION_PREFIX = "netc.dev/"
"""Where on a Node netc's annotations live (`membership kubernetes`)."""


@frozen
class Membership:
    """Where a cluster's members come from.

    `static`: its `node` statements, nothing else.  `etcd`: a datastore
    where each node's agent claims a block under a lease and every agent
    watches the others come and go; `node` statements then only pin blocks
    to names.  The files are the client's certificate and key and the CA of
    etcd's, as the agent's container sees them.  `kubernetes`: the Node
    objects of the Kubernetes API, each node's subnets its `spec.podCIDRs`;
    each agent publishes what its peers need as annotations of its own Node,
    under `annotation_prefix`.
    """

    source: str = "static"
    endpoints: tuple[str, ...] = ()
    prefix: str = "/netc"
    lease: int = DEFAULT_LEASE
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    span: Span | None = None
    annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX

    @property
    def dynamic(self) -> bool:
        """Whether members come and go without a new configuration."""
        return self.source != "static"


@frozen
class Cluster:
    """A cluster's pod network: its pod CIDRs, its nodes and the routing between them."""

    name: str
    pod_cidrs: tuple[IPNetwork, ...]
    node_blocks: tuple[int, ...]
    """The prefix length of a node's subnet in each pod CIDR (same order)."""
    nodes: tuple[Node, ...]
    routing: Routing = field(default_factory=Routing)
    span: Span | None = None
    membership: Membership = field(default_factory=Membership)
    """Where its members come from; with a datastore, `nodes` are pinned blocks only."""

    def node(self, name: str) -> Node | None:
        """The node of this name, if the cluster has it."""
        return next((n for n in self.nodes if n.name == name), None)

    @property
    def tunnel_family(self) -> int:
        """The address family VXLAN packets travel in between nodes (IPv4 if nodes have it).

        Nodes without addresses -- a dynamic cluster's pins, whose agents
        publish theirs -- say nothing about it.
        """
        return 4 if all(n.address(4) for n in self.nodes if n.addresses) else 6

    @property
    def pod_mtu(self) -> int | None:
        """The largest packet a pod may send to another node (None: the underlay's, host-gw)."""
        if not self.routing.tunnels:
            return None
        return self.routing.underlay_mtu - VXLAN_OVERHEAD[self.tunnel_family]
