"""The attach plan of a bridge network: every operation an ADD performs, in order.

    record   write the attachment record first, so a crash leaves a trace DEL reads
    node     br_netfilter, bridge-nf-call-iptables, ip_forward, the bridge, its
             gateway addresses, the loopback guard (with host ports), the
             network's NAT chains and their entry jumps
    ipam     one address per family, from host-local-compatible state
    sandbox  the veth pair, bridge port, `lo` up, addresses and routes in the pod
    hostport the node-wide claim on each host port, the pod's DNAT chain,
             a conntrack flush for UDP ports
    shaping  TBF on the host veth (traffic to the pod); an ifb fed by a redirect
             from the host veth, with a TBF (traffic from the pod)

NAT design, different from the reference plugins on purpose: masquerade is
per subnet in one node-scoped chain (not one rule per pod in POSTROUTING), and
hairpin/localhost SNAT matches `--ctstate DNAT` instead of a mark bit that
could collide with kube-proxy's.  A pod's own NAT state is one chain and one
jump, so a DEL needs neither its IP nor its port list to remove them.
"""

from __future__ import annotations

from typing import TypeVar

from compiler.ir import Bandwidth, Bridge, Cluster, HostPort, Ipam, Network, family_key
from compiler.planner import params
from compiler.planner.context import PodContext, PortMapping
from compiler.planner.iptables import Rule, comment, rule
from compiler.planner.names import (
    AttachmentNames,
    NetworkNames,
    hostport_claims_path,
    record_path,
)
from compiler.planner.ops import Operation, Params, Phase, Scope, Where
from compiler.planner.policy import (
    Shaping,
    check_mappings,
    check_requested,
    resolve_bandwidth,
)
from compiler.shaping import Bucket, describe_rate
from compiler.source import Span

MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
LOOPBACK = "127.0.0.0/8"

Origin = Bridge | Ipam | HostPort | Bandwidth
"""The part of the network an operation comes from: its span is the operation's."""
P = TypeVar("P", bound=Params)
FORWARDING = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
"""The sysctl that makes a node route each family between its interfaces."""


def attach_operations(
    network: Network, pod: PodContext, enforce: bool = True
) -> list[Operation[Params]]:
    """Every operation of an ADD, in execution order.

    The host ports come before the pod's interface: a taken port fails the
    ADD before any link exists, and their DNAT's iptables-restore runs
    (`Run.later`) while the links are set up.  With `enforce` off the
    policy is not applied: a DEL must undo what an ADD did even if the
    policy has since changed to refuse it.
    """
    assert network.bridge is not None and network.ipam is not None
    names = AttachmentNames(network.name, pod.container_id, pod.ifname)
    mappings = pod.port_mappings
    if mappings is not None and enforce:
        mappings = check_mappings(network, pod)
    if enforce:
        check_requested(network, pod)
    shaping = resolve_bandwidth(network, pod, enforce) if pod.bandwidth is not None else None
    return [
        _record(network, names),
        *node_operations(network),
        *_ipam(network.ipam, network.name, network.state_dir, pod),
        *_hostport(network, network.ipam, mappings, names),
        *_sandbox(network.bridge, network.ipam, pod, names),
        *_shaping(network, shaping, names),
    ]


def _record(network: Network, names: AttachmentNames) -> Operation[params.StateRecordParams]:
    path = record_path(network.state_dir, network.name, names.container_id, names.ifname)
    return Operation(
        path,
        f"record of attachment {names.key}",
        params.StateRecordParams(path),
        Phase.RECORD,
        span=network.span,
    )


def node_operations(network: Network) -> list[Operation[Params]]:
    """The node-scoped operations of a bridge network: what every pod's ADD ensures first."""
    bridge, ipam = network.bridge, network.ipam
    assert bridge is not None and ipam is not None
    families = ipam.families()
    routed = bridge.gateway or network.hostport is not None
    ops: list[Operation[Params]] = [
        _node_op(
            "br_netfilter",
            "load br_netfilter (bridged traffic meets iptables)",
            params.KernelModuleParams("br_netfilter", "/proc/sys/net/bridge"),
            bridge,
        ),
        sysctl_operation("net.bridge.bridge-nf-call-iptables", "1", bridge),
    ]
    if 6 in families:
        ops.append(sysctl_operation("net.bridge.bridge-nf-call-ip6tables", "1", bridge))
    if routed and 4 in families:
        ops.append(sysctl_operation(FORWARDING[4], "1", bridge))
    if routed and 6 in families:
        ops.append(sysctl_operation(FORWARDING[6], "1", bridge))
    mtu = f" mtu {bridge.mtu}" if bridge.mtu else ""
    promisc = " promisc" if bridge.promiscuous else ""
    ops.append(
        _node_op(
            bridge.name,
            f"bridge {bridge.name}{mtu}{promisc}",
            params.LinkBridgeParams(bridge.name, bridge.mtu, bridge.promiscuous),
            bridge,
        )
    )
    ops.append(
        sysctl_operation(
            f"net.ipv6.conf.{bridge.name}.accept_ra",
            "0",
            bridge,
            origin_device=bridge.name,
            optional=6 not in families,
        )
    )
    if 6 in families:
        # Set before the bridge comes up: while its link-local address is
        # tentative the node cannot resolve pods for traffic it forwards.
        ops.append(
            sysctl_operation(
                f"net.ipv6.conf.{bridge.name}.accept_dad", "0", bridge, origin_device=bridge.name
            )
        )
    ops.append(
        _node_op(
            f"{bridge.name} (node)",
            f"set {bridge.name} up",
            params.LinkUpParams(bridge.name),
            bridge,
        )
    )
    if bridge.gateway:
        for subnet in ipam.subnets:
            address = f"{subnet.gateway}/{subnet.cidr.prefixlen}"
            ops.append(
                Operation(
                    f"{bridge.name} {address}",
                    f"gateway {address} on {bridge.name}",
                    params.AddressParams(bridge.name, address),
                    Phase.NODE,
                    scope=Scope.NODE,
                    span=subnet.span,
                )
            )
    hostport = network.hostport
    if hostport is not None and hostport.snat and 4 in families:
        ops.append(_localnet_guard(network, bridge, hostport))
        ops.append(
            sysctl_operation(
                f"net.ipv4.conf.{bridge.name}.route_localnet",
                "1",
                hostport,
                origin_device=bridge.name,
            )
        )
    ops += [op for family in families if (op := _node_nat(network, bridge, ipam, family))]
    return ops


def _node_op(target: str, summary: str, params: P, origin: Origin) -> Operation[P]:
    return Operation(target, summary, params, Phase.NODE, scope=Scope.NODE, span=origin.span)


def sysctl_operation(
    key: str,
    value: str,
    origin: Origin | Cluster,
    *,
    where: Where = Where.NODE,
    scope: Scope = Scope.NODE,
    undone_by: str | None = None,
    phase: Phase = Phase.NODE,
    origin_device: str | None = None,
    optional: bool = False,
    why: str | None = None,
) -> Operation[params.SysctlParams]:
    """A sysctl; `origin_device` names an interface in the key, whose dots stay dots.

    An `optional` one is skipped where the setting does not exist (IPv6 turned
    off at boot), instead of failing the ADD.  `why` is said in its summary.
    """
    path = key.replace(".", "/")
    if origin_device:
        prefix, _, setting = key.rpartition(f".{origin_device}.")
        path = f"{prefix.replace('.', '/')}/{origin_device}/{setting}"
    notes = [note for note in ("where the node has it" if optional else None, why) if note]
    summary = f"{key} = {value}" + (f" ({'; '.join(notes)})" if notes else "")
    return Operation(
        key,
        summary,
        params.SysctlParams(path, value, optional),
        phase,
        scope=scope,
        where=where,
        undone_by=undone_by,
        span=origin.span,
    )


def _localnet_guard(
    network: Network, bridge: Bridge, hostport: HostPort
) -> Operation[params.IptablesNodeParams]:
    """Drop what arrives on the bridge addressed to 127.0.0.0/8, before NAT and conntrack.

    `route_localnet=1`, which `127.0.0.1:hostPort` needs (the pod's answers
    are routed back to 127.0.0.1 once un-NATed), also lets a pod address the
    node's loopback services directly (the class of CVE-2020-8558).  Before
    NAT no legitimate packet from the bridge has such a destination -- the
    answers to a localhost hostPort are still addressed to the gateway -- so
    a chain of the raw table, jumped to first thing in PREROUTING, drops
    every one.  Set up before the sysctl, so the bridge never accepts them
    unguarded.
    """
    names = NetworkNames(network.name)
    chain = names.localnet_chain
    drop = params.NatChain(chain, (rule("-i", bridge.name, "-d", LOOPBACK, "-j", "DROP"),))
    first = params.NatJump("PREROUTING", rule(*comment(names.comment), "-j", chain), first=True)
    return Operation(
        f"ipv4 raw of {network.name}",
        f"raw PREROUTING -> {chain}: drop what arrives on {bridge.name} for {LOOPBACK} (no "
        "pod reaches the node's loopback)",
        params.IptablesNodeParams(
            4, "raw", (drop,), (), (first,), state=f"{network.state_dir}/{network.name}"
        ),
        Phase.NODE,
        scope=Scope.NODE,
        span=hostport.span,
    )


def _node_nat(
    network: Network, bridge: Bridge, ipam: Ipam, family: int
) -> Operation[params.IptablesNodeParams] | None:
    """The network's NAT for one family, set up as one transaction: chains, rules, jumps.

    NETC-PO (masquerade, hostPort SNAT) is declared with its rules; NETC-HP,
    which PREROUTING and OUTPUT send local traffic to, holds the pods' jumps.
    """
    names = NetworkNames(network.name)
    owner = comment(names.comment)
    rules = _postrouting_rules(network, bridge, ipam, family)
    chains: list[params.NatChain] = []
    jumps: list[params.NatJump] = []
    dispatch: list[str] = []
    if rules:
        chains.append(params.NatChain(names.postrouting_chain, tuple(rules)))
        jumps.append(params.NatJump("POSTROUTING", rule(*owner, "-j", names.postrouting_chain)))
    if network.hostport is not None:
        dispatch.append(names.hostport_chain)
        entry = rule("-m", "addrtype", "--dst-type", "LOCAL", *owner, "-j", names.hostport_chain)
        jumps += [params.NatJump("PREROUTING", entry), params.NatJump("OUTPUT", entry)]
    if not jumps:
        return None
    shown = ", ".join([*(f"{c.name} ({len(c.rules)} rules)" for c in chains), *dispatch])
    origin = bridge if rules and bridge.masquerade else network.hostport or bridge
    return Operation(
        f"{family_key(family)} nat of {network.name}",
        f"NAT of network {network.name} (IPv{family}): {shown}, {len(jumps)} jumps",
        params.IptablesNodeParams(family, "nat", tuple(chains), tuple(dispatch), tuple(jumps)),
        Phase.NODE,
        scope=Scope.NODE,
        span=origin.span,
    )


def _postrouting_rules(network: Network, bridge: Bridge, ipam: Ipam, family: int) -> list[Rule]:
    subnets = [str(s.cidr) for s in ipam.subnets_of(family)]
    rules = []
    hostport = network.hostport
    dnat = ("-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE")
    if hostport is not None and hostport.snat:
        if family == 4:
            rules.append(rule("-s", LOOPBACK, "-o", bridge.name, *dnat))
        rules += [rule("-s", s, "-d", s, *dnat) for s in subnets]
    if bridge.masquerade:
        # Pod-to-pod traffic keeps its source address: across nodes too, on a cluster.
        local = [str(c) for c in ipam.pod_cidrs if c.version == family] or subnets
        rules += [rule("-d", s, "-j", "RETURN") for s in local]
        rules.append(rule("-d", MULTICAST[family], "-j", "RETURN"))
        rules += [rule("-s", s, "-j", "MASQUERADE") for s in subnets]
    return rules


def _ipam(
    ipam: Ipam, network: str, state_dir: str, pod: PodContext
) -> list[Operation[params.IpamAddressParams]]:
    ops = []
    for index, family in enumerate(ipam.families()):
        subnets = ipam.subnets_of(family)
        ranges = tuple(
            params.AddressRange(str(s.cidr), str(s.range_start), str(s.range_end), str(s.gateway))
            for s in subnets
        )
        shown = ", ".join(r.subnet for r in ranges)
        key = family_key(family)
        requested = pod.requested(family)
        what = f"{requested}" if requested else f"an IPv{family} address"
        ops.append(
            Operation(
                f"{key} from {shown}",
                f"reserve {what} in {shown} -> {{{key}.cidr}}",
                params.IpamAddressParams(
                    family,
                    key,
                    index,
                    ranges,
                    str(requested) if requested else None,
                    ipam.data_dir,
                    network,
                    state_dir,
                ),
                Phase.IPAM,
                span=subnets[0].span,
            )
        )
    return ops


def _sandbox(
    bridge: Bridge, ipam: Ipam, pod: PodContext, names: AttachmentNames
) -> list[Operation[Params]]:
    host, eth = names.host_veth, pod.ifname
    mtu = f" mtu {bridge.mtu}" if bridge.mtu else ""
    ops: list[Operation[Params]] = [
        Operation(
            host,
            f"veth pair {host} <-> {eth} in the pod{mtu}",
            params.LinkVethParams(host, eth, pod.netns, bridge.mtu),
            Phase.SANDBOX,
            span=bridge.span,
        ),
        Operation(
            f"{host} master {bridge.name}",
            f"{host} joins bridge {bridge.name}",
            params.LinkMasterParams(host, bridge.name),
            Phase.SANDBOX,
            undone_by=host,
            span=bridge.span,
        ),
    ]
    if bridge.hairpin:
        ops.append(
            Operation(
                f"{host} hairpin",
                f"hairpin on {host}",
                params.LinkHairpinParams(host, on=True),
                Phase.SANDBOX,
                undone_by=host,
                span=bridge.span,
            )
        )
    ops += [
        _without_ipv6(host, bridge, Phase.SANDBOX),
        _up(host, Where.NODE, host, bridge),
        _up("lo", Where.SANDBOX, "sandbox", bridge),
    ]
    if 6 in ipam.families():
        ops.append(
            sysctl_operation(
                f"net.ipv6.conf.{eth}.accept_dad",
                "0",
                ipam,
                where=Where.SANDBOX,
                scope=Scope.ATTACHMENT,
                undone_by=host,
                phase=Phase.SANDBOX,
                origin_device=eth,
            )
        )
    for family in ipam.families():
        key = family_key(family)
        ops.append(
            Operation(
                f"{eth} {{{key}.cidr}}",
                f"{{{key}.cidr}} on {eth}",
                params.AddressParams(eth, f"{{{key}.cidr}}"),
                Phase.SANDBOX,
                where=Where.SANDBOX,
                undone_by=host,
                span=ipam.span,
            )
        )
    ops.append(_up(eth, Where.SANDBOX, host, bridge))
    for family in ipam.families():
        ops.append(_forget_neighbour(bridge, family, ipam))
    for route in ipam.routes:
        via = str(route.via) if route.via else f"{{{family_key(route.dst.version)}.gateway}}"
        ops.append(
            Operation(
                f"{route.dst} via {via}",
                f"route {route.dst} via {via} dev {eth}",
                params.RouteParams(str(route.dst), via, eth),
                Phase.SANDBOX,
                where=Where.SANDBOX,
                undone_by=host,
                span=route.span,
            )
        )
    return ops


def _forget_neighbour(
    bridge: Bridge, family: int, ipam: Ipam
) -> Operation[params.NeighbourForgetParams]:
    """The node forgets the MAC its neighbour table holds for the pod's address.

    A reused address would otherwise keep the previous pod's MAC for up to
    45 s (the pod's gratuitous ARP goes out before its bridge port forwards);
    DEL forgets it too, for the next pod.
    """
    key = family_key(family)
    return Operation(
        f"{bridge.name} {{{key}.ip}}",
        f"forget the node's neighbour entry for {{{key}.ip}} on {bridge.name}",
        params.NeighbourForgetParams(bridge.name, f"{{{key}.ip}}"),
        Phase.SANDBOX,
        span=ipam.span,
    )


def _up(
    dev: str, where: Where, undone_by: str, origin: Origin, phase: Phase = Phase.SANDBOX
) -> Operation[params.LinkUpParams]:
    place = "in the pod" if where == Where.SANDBOX else "on the node"
    return Operation(
        f"{dev} ({where})",
        f"set {dev} up {place}",
        params.LinkUpParams(dev),
        phase,
        where=where,
        undone_by=undone_by,
        span=origin.span,
    )


def _without_ipv6(dev: str, origin: Origin, phase: Phase) -> Operation[params.SysctlParams]:
    """IPv6 off on a link of the pod's in the node (its host veth, its ifb), before it is up.

    Neither uses addresses of its own: the bridge takes every frame its port
    receives, and an ifb only turns traffic around.  With IPv6 on, each would
    add a link-local address, its routes and multicast memberships to the
    node's tables, and each link deleted walks the node's IPv6 routes, so
    every ADD and DEL would slow as the node's pods grow.
    """
    return sysctl_operation(
        f"net.ipv6.conf.{dev}.disable_ipv6",
        "1",
        origin,
        scope=Scope.ATTACHMENT,
        undone_by=dev,
        phase=phase,
        origin_device=dev,
        optional=True,
        why="the link needs no address of its own",
    )


def _hostport(
    network: Network, ipam: Ipam, mappings: tuple[PortMapping, ...] | None, names: AttachmentNames
) -> list[Operation[Params]]:
    policy = network.hostport
    if policy is None or mappings == ():
        return []
    claims = None if mappings is None else tuple(params.HostportClaim.of(m) for m in mappings)
    shown = "the attachment's host ports" if claims is None else ", ".join(map(str, claims))
    ops: list[Operation[Params]] = [
        Operation(
            shown,
            f"claim {shown} on the node",
            params.HostportClaimParams(
                hostport_claims_path(network.state_dir), claims, names.comment
            ),
            Phase.HOSTPORT,
            span=policy.span,
        )
    ]
    hostports = NetworkNames(network.name).hostport_chain
    owner = comment(names.comment)
    for family in ipam.families():
        rules = None if mappings is None else _dnat_rules(mappings, family, owner)
        if rules == ():
            continue
        count = "its" if rules is None else str(len(rules))
        ops.append(
            Operation(
                f"{family_key(family)} nat/{names.dnat_chain}",
                f"DNAT chain nat/{names.dnat_chain} with {count} rules, jumped to from "
                f"{hostports} (IPv{family})",
                params.IptablesAttachmentParams(
                    family,
                    "nat",
                    names.dnat_chain,
                    rules,
                    hostports,
                    rule(*owner, "-j", names.dnat_chain),
                ),
                Phase.HOSTPORT,
                span=policy.span,
            )
        )
    ops += _conntrack_flushes(mappings or (), ipam.families(), policy.span)
    return ops


def _conntrack_flushes(
    mappings: tuple[PortMapping, ...], families: tuple[int, ...], span: Span | None
) -> list[Operation[params.ConntrackFlushParams]]:
    ops = []
    for family in families:
        udp = sorted({m.host_port for m in mappings if m.protocol == "udp" and _applies(m, family)})
        if udp:
            ops.append(
                Operation(
                    f"{family_key(family)} udp {','.join(map(str, udp))}",
                    f"forget UDP conntrack entries to ports {', '.join(map(str, udp))} "
                    f"(IPv{family})",
                    params.ConntrackFlushParams(family, "udp", tuple(udp)),
                    Phase.HOSTPORT,
                    span=span,
                )
            )
    return ops


def _applies(mapping: PortMapping, family: int) -> bool:
    return mapping.host_ip is None or mapping.host_ip.version == family


def _dnat_rules(mappings: tuple[PortMapping, ...], family: int, owner: Rule) -> tuple[Rule, ...]:
    """One DNAT rule per mapping of the family, each carrying the owner's comment."""
    key = family_key(family)
    pod = f"{{{key}.ip}}" if family == 4 else f"[{{{key}.ip}}]"
    rules = []
    for mapping in mappings:
        if not _applies(mapping, family):
            continue
        destination = ("-d", str(mapping.host_ip)) if mapping.host_ip else ()
        rules.append(
            rule(
                *destination,
                "-p",
                mapping.protocol,
                "-m",
                mapping.protocol,
                "--dport",
                str(mapping.host_port),
                *owner,
                "-j",
                "DNAT",
                "--to-destination",
                f"{pod}:{mapping.container_port}",
            )
        )
    return tuple(rules)


def _shaping(
    network: Network, shaping: Shaping | None, names: AttachmentNames
) -> list[Operation[Params]]:
    if network.bandwidth is None:
        return []
    host, ifb = names.host_veth, names.ifb
    if shaping is None:
        return _ifb(ifb, host, network)
    ops: list[Operation[Params]] = []
    ingress = shaping.bucket_for("ingress")
    if ingress is not None:
        ops.append(_tbf(host, ingress, "to the pod", host, shaping.span_for("ingress")))
    egress = shaping.bucket_for("egress")
    if egress is not None:
        span = shaping.span_for("egress")
        ops += [
            *_ifb(ifb, host, network),
            _tbf(ifb, egress, "from the pod", ifb, span),
            Operation(
                f"{host} ingress",
                f"ingress qdisc on {host}",
                params.TcIngressParams(host),
                Phase.SHAPING,
                undone_by=host,
                span=span,
            ),
            Operation(
                f"{host} -> {ifb}",
                f"redirect {host} ingress to {ifb}",
                params.TcRedirectParams(host, ifb),
                Phase.SHAPING,
                undone_by=host,
                span=span,
            ),
        ]
    return ops


def _ifb(ifb: str, veth: str, network: Network) -> list[Operation[Params]]:
    """The ifb, which shares the link group of the pod's `veth` (one batch on DEL), then up."""
    assert network.bandwidth is not None
    return [
        Operation(
            ifb,
            f"ifb {ifb} in the link group of {veth}",
            params.LinkIfbParams(ifb, veth),
            Phase.SHAPING,
            span=network.bandwidth.span,
        ),
        _without_ipv6(ifb, network.bandwidth, Phase.SHAPING),
        _up(ifb, Where.NODE, ifb, network.bandwidth, Phase.SHAPING),
    ]


def _tbf(
    dev: str, tbf: Bucket, what: str, parent: str, span: Span | None
) -> Operation[params.TcTbfParams]:
    return Operation(
        f"{dev} root tbf",
        f"tbf on {dev}: {describe_rate(tbf.rate_bits)} {what}, "
        f"burst {tbf.burst_bytes} B, queue {tbf.limit_bytes} B",
        params.TcTbfParams(dev, tbf.rate_bytes, tbf.burst_bytes, tbf.limit_bytes),
        Phase.SHAPING,
        undone_by=parent,
        span=span,
    )
