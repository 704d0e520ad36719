"""The intermediate representation: one validated, normalised pod network.

The IR is what every back end reads -- the conflist emitters, the planner and,
through the conflist, the runtime plugin -- so it holds facts, not syntax:
addresses are `ipaddress` objects, rates are bits per second, defaults are
applied, and every object keeps the `Span` it came from.  It is immutable and
free of lark and click: the runtime imports it on every CNI call.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from compiler.source import Span
from compiler.versions import DEFAULT_CNI_VERSION

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def family_key(family: int) -> str:
    """`ipv4` or `ipv6`: how plans, results and tools name an address family."""
    return f"ipv{family}"


DEFAULT_BRIDGE = "cni0"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
DEFAULT_STATE_DIR = "/run/netc"

MIN_RATE = 1000
"""Slowest accepted rate in bit/s; containerd refuses pods below 1k as well."""
MAX_RATE = 10**15
"""Fastest accepted rate in bit/s (1P); containerd's upper bound."""


@dataclass(frozen=True, slots=True)
class Bridge:
    """A Linux bridge main plugin: pods get a veth pair with one end on the bridge."""

    name: str = DEFAULT_BRIDGE
    mtu: int | None = None
    gateway: bool = False
    masquerade: bool = False
    hairpin: bool = False
    promiscuous: bool = False
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Plugin:
    """A plugin netc does not model (calico, flannel, firewall, ...): its options pass through."""

    type: str
    options: dict[str, Any]
    span: Span | None = None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Route:
    """A route given to pods; without `via` it goes through the subnet's gateway."""

    dst: IPNetwork
    via: IPAddress | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Ipam:
    """host-local style address management: one address per family for each pod."""

    subnets: tuple[Subnet, ...]
    routes: tuple[Route, ...] = ()
    dns: Dns | None = None
    data_dir: str = DEFAULT_DATA_DIR
    span: Span | None = None
    static_ips: bool = False
    """Whether the runtime may ask for an address (the `ips` capability, `podman run --ip`)."""

    def families(self) -> tuple[int, ...]:
        """The address families pods get, IPv4 first."""
        return tuple(sorted({s.family for s in self.subnets}))

    def subnets_of(self, family: int) -> tuple[Subnet, ...]:
        """The subnets of one family: together they form one host-local range set."""
        return tuple(s for s in self.subnets if s.family == family)


PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class HostPort:
    """hostPort support (the portMappings capability) and the policy mappings must meet."""

    allow: tuple[PortRule, ...] = ()
    deny: tuple[PortRule, ...] = ()
    host_ips: tuple[IPAddress, ...] = ()
    snat: bool = True
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate in bit/s and an optional bucket size in bits."""

    rate: int
    burst: int | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-direction limits; ingress is traffic to the pod, egress traffic from it."""

    ingress: Rate | None = None
    egress: Rate | None = None
    span: Span | None = None

    def direction(self, name: str) -> Rate | None:
        """The limit for 'ingress' or 'egress'."""
        return getattr(self, name)


DIRECTIONS = ("ingress", "egress")


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """Bandwidth defaults and maximums for pods of some Kubernetes namespaces."""

    names: tuple[str, ...]
    default: Limits | None = None
    max: Limits | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    sources: tuple[str, ...] = field(default=())
    chain: tuple[Plugin, ...] = ()
    """Plugins run after netc's own (firewall, tuning, ...), options passed through."""
