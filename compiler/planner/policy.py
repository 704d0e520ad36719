"""Applying a network's policy to one pod: which host ports, which rates.

hostPort: a mapping is refused when its port is denied, when `allow` rules
exist and none covers it, or when it names a hostIP outside `host-ip`.  The
error names the rule and its `.netdsl` location.

Bandwidth, per direction, first match wins:

1. a static `limit` applies to every pod; annotations are ignored;
2. the pod's request (the kubernetes.io/*-bandwidth annotations, which the
   runtime passes as runtimeConfig.bandwidth) -- refused, not clamped, when
   it exceeds the `max` of the pod's namespace block, else the network's;
3. the `default` of the pod's namespace block, else the network's;
4. no limit.

Refusing an excessive request (rather than clamping it) keeps what runs equal
to what the pod spec says, as a LimitRange admission would.
"""

from __future__ import annotations

from compiler.datatypes import frozen
from compiler.errors import Code, NetcError
from compiler.ir import (
    DIRECTIONS,
    Bandwidth,
    Direction,
    HostPort,
    Limits,
    Network,
    Rate,
    of_direction,
)
from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from compiler.shaping import Bucket, bucket, describe_rate
from compiler.source import Span


class PolicyError(NetcError):
    """A pod asked for something the network's policy does not allow."""

    def __init__(self, message: str, span: Span | None, code: Code) -> None:
        where = f" ({span})" if span else ""
        super().__init__(message + where, code)
        self.span = span


def check_mappings(network: Network, pod: PodContext) -> tuple[PortMapping, ...]:
    """The pod's port mappings, after the hostPort policy let each of them through."""
    mappings = pod.port_mappings or ()
    if mappings and network.hostport is None:
        raise PolicyError(
            f"network {network.name} has no hostport support, but the pod maps {mappings[0]}",
            network.span,
            Code.HOSTPORT_REFUSED,
        )
    for mapping in mappings:
        _check_mapping(mapping, network.hostport, network)
    return mappings


def _check_mapping(mapping: PortMapping, policy: HostPort | None, network: Network) -> None:
    assert policy is not None
    denied = next((r for r in policy.deny if r.covers(mapping.host_port, mapping.protocol)), None)
    if denied:
        raise PolicyError(
            f"host port {mapping.host_port}/{mapping.protocol} is refused by `{denied}`",
            denied.span,
            Code.HOSTPORT_REFUSED,
        )
    if policy.allow and not any(
        r.covers(mapping.host_port, mapping.protocol) for r in policy.allow
    ):
        allowed = ", ".join(str(r).removeprefix("allow ") for r in policy.allow)
        raise PolicyError(
            f"host port {mapping.host_port}/{mapping.protocol} is outside the "
            f"allowed ports ({allowed})",
            policy.allow[0].span,
            Code.HOSTPORT_REFUSED,
        )
    if mapping.host_ip and policy.host_ips and mapping.host_ip not in policy.host_ips:
        shown = ", ".join(map(str, policy.host_ips))
        raise PolicyError(
            f"hostIP {mapping.host_ip} of {mapping} is not one of the allowed host IPs ({shown})",
            policy.span,
            Code.HOSTPORT_REFUSED,
        )


def check_requested(network: Network, pod: PodContext) -> None:
    """A requested address must be one the network could hand out (in a range, no gateway)."""
    ipam = network.ipam
    for address in pod.requested_ips:
        subnets = ipam.subnets_of(address.version) if ipam else ()
        usable = [s for s in subnets if s.hands_out(address)]
        if not usable:
            ranges = ", ".join(f"{s.range_start}..{s.range_end}" for s in subnets) or "none"
            raise PolicyError(
                f"the pod asks for address {address}, which is in no range of "
                f"network {network.name} ({ranges})",
                ipam.span if ipam else network.span,
                Code.NO_ADDRESS,
            )


@frozen
class Shaping:
    """The resolved limits of one pod: a token bucket per shaped direction."""

    ingress: Bucket | None = None
    egress: Bucket | None = None
    ingress_span: Span | None = None
    egress_span: Span | None = None

    def bucket_for(self, direction: Direction) -> Bucket | None:
        """The bucket of 'ingress' or 'egress'."""
        return of_direction(direction, self.ingress, self.egress)

    def span_for(self, direction: Direction) -> Span | None:
        """Where the limit of a direction was decided."""
        return of_direction(direction, self.ingress_span, self.egress_span)


def resolve_bandwidth(network: Network, pod: PodContext, enforce: bool = True) -> Shaping:
    """The limits a pod gets, following the precedence in the module docstring.

    With `enforce` off, requests above the maximum are taken as they are (a
    DEL must find what an ADD installed, whatever the policy says now).
    """
    policy = network.bandwidth
    request = pod.bandwidth or BandwidthRequest()
    if policy is None:
        if enforce and any(request.rate(d) for d in DIRECTIONS):
            raise PolicyError(
                f"network {network.name} has no bandwidth support, but the pod asks for a limit",
                network.span,
                Code.BANDWIDTH_REFUSED,
            )
        return Shaping()
    buckets: dict[Direction, Bucket | None] = {}
    spans: dict[Direction, Span | None] = {}
    for direction in DIRECTIONS:
        rate, span = _direction(policy, request, pod.namespace, direction, enforce)
        from_pod = rate is not None and rate.span is None  # what the pod asked has no span
        buckets[direction] = bucket(rate.rate, rate.burst, bound=from_pod) if rate else None
        spans[direction] = span
    return Shaping(buckets["ingress"], buckets["egress"], spans["ingress"], spans["egress"])


def _direction(
    policy: Bandwidth,
    request: BandwidthRequest,
    namespace: str | None,
    direction: Direction,
    enforce: bool,
) -> tuple[Rate | None, Span | None]:
    if policy.limit is not None:
        rate = policy.limit.direction(direction)
        return rate, rate.span if rate else None
    scoped = policy.namespace(namespace)
    asked = request.rate(direction)
    if asked:
        if enforce:
            _check_max(
                asked, direction, _pick(scoped.max if scoped else None, policy.max, direction)
            )
        return Rate(asked, request.burst(direction)), policy.span
    default = _pick(scoped.default if scoped else None, policy.default, direction)
    return default, default.span if default else None


def _pick(scoped: Limits | None, network: Limits | None, direction: Direction) -> Rate | None:
    chosen = scoped.direction(direction) if scoped else None
    return chosen or (network.direction(direction) if network else None)


def _check_max(asked: int, direction: str, maximum: Rate | None) -> None:
    if maximum is not None and asked > maximum.rate:
        raise PolicyError(
            f"the pod asks for {direction} {describe_rate(asked)}, above the maximum "
            f"{describe_rate(maximum.rate)}",
            maximum.span,
            Code.BANDWIDTH_REFUSED,
        )
