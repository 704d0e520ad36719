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
from typing import Any

from compiler.datatypes import field, frozen
from compiler.errors import Code, NetcError
from compiler.ir import MAX_RATE, PROTOCOLS, Direction, IPAddress, of_direction

RUNTIME_DEFAULT_BURSTS = (2**32 - 1, (2**32 - 1) * 8 - 1)
"""Bursts runtimes invent when a pod gives none: containerd's and CRI-O's."""


class ContextError(NetcError):
    """A runtime or a user handed us a pod description we cannot read.

    Code 7 (runtimeConfig is part of the configuration) unless the culprit
    is an environment variable (CNI_ARGS: code 4).
    """

    code = Code.BAD_CONFIG


@frozen
class PortMapping:
    """One hostPort: traffic to host_port on the node goes to container_port in the pod."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: IPAddress | None = None

    def __str__(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip else ""
        return f"{where}{self.host_port}->{self.container_port}/{self.protocol}"


@frozen
class BandwidthRequest:
    """What a pod asks for (its annotations), in bit/s and bits; None means not asked."""

    ingress_rate: int | None = None
    ingress_burst: int | None = None
    egress_rate: int | None = None
    egress_burst: int | None = None

    def rate(self, direction: Direction) -> int | None:
        """The requested rate of 'ingress' or 'egress'."""
        return of_direction(direction, self.ingress_rate, self.egress_rate)

    def burst(self, direction: Direction) -> int | None:
        """The requested burst, None when absent or one of the runtimes' placeholders."""
        value = of_direction(direction, self.ingress_burst, self.egress_burst)
        return None if value in RUNTIME_DEFAULT_BURSTS else value


@frozen
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
            raise ContextError(f"CNI_ARGS piece {piece!r} is not KEY=VALUE", Code.BAD_ENVIRONMENT)
        pairs[key] = value
    return pairs


def requested_addresses(
    args: Mapping[str, str], runtime_config: Mapping[str, Any]
) -> tuple[IPAddress, ...]:
    """Addresses a pod asks for: `runtimeConfig.ips`, else CNI_ARGS `IP=` (podman --ip).

    Both take `ip` or `ip/prefix`; CNI_ARGS may list several, comma-separated.
    """
    entries = runtime_config.get("ips")
    code = Code.BAD_CONFIG
    if entries is None:
        entries = [e for e in args.get("IP", "").split(",") if e]
        code = Code.BAD_ENVIRONMENT
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ContextError("runtimeConfig ips must be a list of strings")
    if any("%" in e for e in entries):
        raise ContextError(f"requested addresses {entries} may not carry a scope", code)
    try:
        return tuple(ipaddress.ip_interface(e).ip for e in entries)
    except ValueError:
        raise ContextError(f"requested addresses {entries} are not all addresses", code) from None


def mappings_from_runtime(entries: Any) -> tuple[PortMapping, ...]:
    """`runtimeConfig.portMappings` in podman's or containerd's spelling."""
    if not isinstance(entries, list):
        raise ContextError("runtimeConfig portMappings must be a list")
    return tuple(_mapping(lower_keys(e)) for e in entries if isinstance(e, Mapping))


def _mapping(entry: Mapping[str, Any]) -> PortMapping:
    host_port = _port(entry, "hostport")
    container_port = _port(entry, "containerport")
    protocol = entry.get("protocol") or "tcp"
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        raise ContextError(f"port mapping protocol {protocol!r} is not tcp, udp or sctp")
    address = host_address(entry.get("hostip"))
    return PortMapping(host_port, container_port, protocol.lower(), address)


def _port(entry: Mapping[str, Any], key: str) -> int:
    """A port number: a JSON integer from 1 to 65535 (not a string, a float or a boolean)."""
    value = entry.get(key)
    if type(value) is not int or not 1 <= value <= 65535:
        raise ContextError(
            f"port mapping {key} {value!r} is not a port number (an integer from 1 to 65535)"
        )
    return value


def host_address(value: Any) -> IPAddress | None:
    """A mapping's hostIP: an address without a scope; empty or unspecified means any."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ContextError(f"port mapping hostIP {value!r} is not a string")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ContextError(f"port mapping hostIP {value!r} is not an address") from None
    if getattr(address, "scope_id", None) is not None:
        raise ContextError(f"port mapping hostIP {value!r} has a scope; give the address alone")
    return None if address.is_unspecified else address


def bandwidth_from_runtime(entry: Any) -> BandwidthRequest:
    """`runtimeConfig.bandwidth` in either spelling; zero means "not asked"."""
    if not isinstance(entry, Mapping):
        raise ContextError("runtimeConfig bandwidth must be an object")
    values = lower_keys(entry)
    return BandwidthRequest(
        *(
            _amount(values, key)
            for key in ("ingressrate", "ingressburst", "egressrate", "egressburst")
        )
    )


def _amount(values: Mapping[str, Any], key: str) -> int | None:
    """A rate or burst: a JSON integer from 0 up; absent or zero means "not asked".

    Rates stop at containerd's 1P bit/s, bursts at what tc's 64-bit fields hold.
    """
    value = values.get(key)
    if value is None:
        return None
    most = MAX_RATE if key.endswith("rate") else 2**63 - 1
    if type(value) is not int or not 0 <= value <= most:
        raise ContextError(f"bandwidth {key} must be an integer from 0 to {most}, not {value!r}")
    return value or None


_PORT_OPTION = re.compile(
    r"^(?P<host>\d+):(?P<container>\d+)(?:/(?P<protocol>[a-z]+))?(?:@(?P<ip>.+))?$"
)


def mapping_from_option(text: str) -> PortMapping:
    """`HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]`, as `netc plan --port` takes it."""
    match = _PORT_OPTION.match(text)
    if not match or (match["protocol"] and match["protocol"] not in PROTOCOLS):
        raise ContextError(f"{text!r} is not HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]")
    entry = {
        "hostport": int(match["host"]),
        "containerport": int(match["container"]),
        "protocol": match["protocol"],
        "hostip": match["ip"],
    }
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
