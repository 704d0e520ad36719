"""The pod side of a plan: who attaches, with which port mappings and bandwidth.

A `PodContext` is built from what a container runtime sends (CNI_ARGS and
`runtimeConfig`) or from `netc plan` options.  Runtimes disagree on key case
-- podman sends `hostPort`, containerd `HostPort` and `IngressRate` -- so
keys are matched case-insensitively.  Bursts of 4294967295 bits (containerd)
or 34359738359 (CRI-O) mean "the pod gave none".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.ir import PROTOCOLS, IPAddress

RUNTIME_DEFAULT_BURSTS = (2**32 - 1, (2**32 - 1) * 8 - 1)
"""Bursts runtimes invent when a pod gives none: containerd's and CRI-O's."""


class ContextError(ValueError):
    """A runtime or a user handed us a pod description we cannot read."""


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One hostPort: traffic to host_port on the node goes to container_port in the pod."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: IPAddress | None = None

    def __str__(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip else ""
        return f"{where}{self.host_port}->{self.container_port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class BandwidthRequest:
    """What a pod asks for (its annotations), in bit/s and bits; None means not asked."""

    ingress_rate: int | None = None
    ingress_burst: int | None = None
    egress_rate: int | None = None
    egress_burst: int | None = None

    def rate(self, direction: str) -> int | None:
        """The requested rate of 'ingress' or 'egress'."""
        return self.ingress_rate if direction == "ingress" else self.egress_rate

    def burst(self, direction: str) -> int | None:
        """The requested burst, None when absent or one of the runtimes' placeholders."""
        value = self.ingress_burst if direction == "ingress" else self.egress_burst
        return None if value in RUNTIME_DEFAULT_BURSTS else value


@dataclass(frozen=True, slots=True)
class PodContext:
    """Everything about one attachment the planner needs.

    `port_mappings` and `bandwidth` are None when unknown: a DEL that came
    with no runtimeConfig and found no record of the ADD.  The plan then
    removes whatever could exist.
    """

    container_id: str
    ifname: str = "eth0"
    netns: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    port_mappings: tuple[PortMapping, ...] | None = field(default=())
    bandwidth: BandwidthRequest | None = field(default_factory=BandwidthRequest)
    requested_ips: tuple[IPAddress, ...] = ()

    def requested(self, family: int) -> IPAddress | None:
        """The address the pod asks for in one family, if any."""
        return next((ip for ip in self.requested_ips if ip.version == family), None)


def lower_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping with lower-case keys, for case-insensitive lookups."""
    return {str(k).lower(): v for k, v in data.items()}


def parse_cni_args(text: str) -> dict[str, str]:
    """`K=V;K=V` as CNI_ARGS carries it; empty pieces are skipped."""
    pairs = {}
    for piece in text.split(";"):
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep:
            raise ContextError(f"CNI_ARGS piece {piece!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def requested_addresses(args: Mapping[str, str], runtime_config: Mapping[str, Any]
                        ) -> tuple[IPAddress, ...]:
    """Addresses a pod asks for: `runtimeConfig.ips`, else CNI_ARGS `IP=` (podman --ip).

    Both take `ip` or `ip/prefix`; CNI_ARGS may list several, comma-separated.
    """
    entries = runtime_config.get("ips")
    if entries is None:
        entries = [e for e in args.get("IP", "").split(",") if e]
    if not isinstance(entries, list):
        raise ContextError("runtimeConfig ips must be a list")
    try:
        return tuple(ipaddress.ip_interface(str(e)).ip for e in entries)
    except ValueError:
        raise ContextError(f"requested addresses {entries} are not all addresses") from None


def mappings_from_runtime(entries: Any) -> tuple[PortMapping, ...]:
    """`runtimeConfig.portMappings` in podman's or containerd's spelling."""
    if not isinstance(entries, list):
        raise ContextError("runtimeConfig portMappings must be a list")
    return tuple(_mapping(lower_keys(e)) for e in entries if isinstance(e, Mapping))


def _mapping(entry: dict[str, Any]) -> PortMapping:
    try:
        host_port = int(entry["hostport"])
        container_port = int(entry["containerport"])
    except (KeyError, TypeError, ValueError):
        raise ContextError(
            f"port mapping {entry} needs integer hostPort and containerPort") from None
    protocol = str(entry.get("protocol") or "tcp").lower()
    host_ip = entry.get("hostip") or None
    try:
        address = ipaddress.ip_address(host_ip) if host_ip else None
    except ValueError:
        raise ContextError(f"port mapping hostIP {host_ip!r} is not an address") from None
    if address is not None and address.is_unspecified:
        address = None
    return PortMapping(host_port, container_port, protocol, address)


def bandwidth_from_runtime(entry: Any) -> BandwidthRequest:
    """`runtimeConfig.bandwidth` in either spelling; zero means "not asked"."""
    if not isinstance(entry, Mapping):
        raise ContextError("runtimeConfig bandwidth must be an object")
    values = lower_keys(entry)

    def number(key: str) -> int | None:
        value = values.get(key)
        try:
            return int(value) or None if value is not None else None
        except (TypeError, ValueError):
            raise ContextError(f"bandwidth {key} must be an integer, not {value!r}") from None

    return BandwidthRequest(number("ingressrate"), number("ingressburst"),
                            number("egressrate"), number("egressburst"))


_PORT_OPTION = re.compile(
    r"^(?P<host>\d+):(?P<container>\d+)(?:/(?P<protocol>[a-z]+))?(?:@(?P<ip>.+))?$")


def mapping_from_option(text: str) -> PortMapping:
    """`HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]`, as `netc plan --port` takes it."""
    match = _PORT_OPTION.match(text)
    if not match or (match["protocol"] and match["protocol"] not in PROTOCOLS):
        raise ContextError(f"{text!r} is not HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]")
    entry = {"hostport": match["host"], "containerport": match["container"],
             "protocol": match["protocol"], "hostip": match["ip"]}
    return _mapping(entry)


def bandwidth_from_option(text: str) -> BandwidthRequest:
    """`ingress=1M,egress=500k` (Kubernetes quantities, as the annotations carry them)."""
    from compiler.quantities import QuantityError, parse_quantity  # not on the plugin's path

    rates: dict[str, int] = {}
    for piece in filter(None, text.split(",")):
        direction, sep, quantity = piece.partition("=")
        if not sep or direction not in ("ingress", "egress"):
            raise ContextError(f"{piece!r} is not ingress=RATE or egress=RATE")
        try:
            rates[direction] = parse_quantity(quantity)
        except QuantityError as error:
            raise ContextError(error.message) from None
    return BandwidthRequest(ingress_rate=rates.get("ingress"), egress_rate=rates.get("egress"))
