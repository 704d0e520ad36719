"""The node-scoped plan of one node: what `netc apply --node` makes true without any pod.

    node    forwarding; each network's bridge, gateway addresses and NAT
    peers   the routes to every other node's pod subnets --
              direct   a route through the peer's underlay address (host-gw, or a
                       peer on this node's underlay subnet in `mixed`)
              tunnel   the VXLAN device once; per peer a route onlink through the
                       peer's VTEP address, a neighbour entry (VTEP address -> MAC)
                       and a forwarding entry (MAC -> the peer's underlay address)
            and last, the removal of what netc owns on the node and the plan no
            longer has (routes and entries of removed peers, an unwanted device)

Routes netc adds carry its own route protocol number (`RTPROT_NETC`), and
links it creates an alias naming the cluster, so a later apply -- even after
a peer was removed while netc was down -- finds exactly what it owns, and
never touches anything else.  A peer's VTEP address is the network address
of its pod subnet and its MAC is derived from (cluster, node), so no node
needs to ask another.
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.cluster import vtep_mac
from compiler.ir import Cluster, IPNetwork, Network, Node
from compiler.planner import params
from compiler.planner.attach import FORWARDING, node_operations, sysctl_operation
from compiler.planner.ops import NodeSubject, Operation, Params, Phase, Plan, Scope, has_params

RTPROT_NETC = 78
"""The route protocol number of netc's routes (`ip route show proto 78`)."""


def owner_alias(cluster: Cluster) -> str:
    """The alias of the links netc creates for a cluster (IFLA_IFALIAS)."""
    return f"netc cluster {cluster.name}"


def node_plan(cluster: Cluster | None, node: str, networks: Sequence[Network]) -> Plan:
    """The node-scoped operations of `node`: its networks' and, on a cluster, its peers'.

    `networks` are already built for the node (`compiler.cluster.for_node`).
    """
    ops = [
        op
        for network in networks
        if network.bridge and network.ipam
        for op in node_operations(network)
    ]
    if cluster is not None:
        me = next(n for n in cluster.nodes if n.name == node)
        ops = [*_forwarding(cluster), *_dedupe(ops), *_peers(cluster, me)]
    sources = tuple(dict.fromkeys(s for n in networks for s in n.sources))
    return Plan(
        "APPLY",
        None,
        tuple(_dedupe(ops)),
        sources,
        NodeSubject(node, cluster.name if cluster else None),
    )


def _dedupe(ops: Sequence[Operation[Params]]) -> list[Operation[Params]]:
    """Each target once (two networks both ask for ip_forward)."""
    seen: dict[tuple[str, str], Operation[Params]] = {}
    for op in ops:
        seen.setdefault((op.kind, op.target), op)
    return list(seen.values())


def _forwarding(cluster: Cluster) -> list[Operation[Params]]:
    return [
        sysctl_operation(
            FORWARDING[c.version], "1", cluster, why="pods of other nodes pass through"
        )
        for c in cluster.pod_cidrs
    ]


def _peers(cluster: Cluster, me: Node) -> list[Operation[Params]]:
    """Per peer, in name order: its forwarding entry and neighbours (tunnel), then routes."""
    ops = _device(cluster, me) if cluster.routing.tunnels else []
    for peer in sorted((n for n in cluster.nodes if n is not me), key=lambda n: n.name):
        tunnelled = [s for s in peer.subnets if not _direct(cluster, me, peer, s.version)]
        if tunnelled:
            ops.append(_fdb(cluster, peer))
        ops += [_neighbour(cluster, peer, s) for s in tunnelled]
        ops += [
            _tunnel_route(cluster, peer, s) if s in tunnelled else _direct_route(peer, s)
            for s in peer.subnets
        ]
    ops.append(_prune(cluster, ops))
    return ops


def _direct(cluster: Cluster, me: Node, peer: Node, family: int) -> bool:
    """Whether `peer`'s pods of a family are reached without the tunnel."""
    if cluster.routing.mode == "host-gw":
        return True
    if cluster.routing.mode == "vxlan":
        return False
    mine, theirs = me.address(family), peer.address(family)
    return bool(mine and theirs and theirs.ip in mine.network)


def vtep_address(subnet: IPNetwork) -> str:
    """A node's VTEP address in a family: the network address of its pod subnet."""
    return str(subnet.network_address)


def _device(cluster: Cluster, me: Node) -> list[Operation[Params]]:
    routing = cluster.routing
    local, mtu = me.address(cluster.tunnel_family), cluster.pod_mtu
    assert local is not None and mtu is not None
    device = routing.device
    ops: list[Operation[Params]] = [
        Operation(
            device,
            f"VXLAN device {device} (VNI {routing.vni}, UDP {routing.port}, "
            f"from {local.ip}, mtu {mtu})",
            params.LinkVxlanParams(
                device,
                routing.vni,
                routing.port,
                str(local.ip),
                mtu,
                vtep_mac(cluster, me),
                owner_alias(cluster),
            ),
            Phase.PEERS,
            scope=Scope.NODE,
            span=routing.span,
        ),
        Operation(
            f"{device} (node)",
            f"set {device} up",
            params.LinkUpParams(device),
            Phase.PEERS,
            scope=Scope.NODE,
            span=routing.span,
        ),
    ]
    for subnet in me.subnets:
        address = f"{vtep_address(subnet)}/{subnet.max_prefixlen}"
        ops.append(
            Operation(
                f"{device} {address}",
                f"VTEP address {address} on {device}",
                params.AddressParams(device, address),
                Phase.PEERS,
                scope=Scope.NODE,
                span=routing.span,
            )
        )
    return ops


def _route(
    peer: Node, subnet: IPNetwork, via: str, dev: str | None, how: str
) -> Operation[params.RouteNodeParams]:
    return Operation(
        f"{subnet} via {via}",
        f"route to {peer.name}'s pods {subnet} via {via} ({how})",
        params.RouteNodeParams(str(subnet), via, dev, dev is not None, RTPROT_NETC),
        Phase.PEERS,
        scope=Scope.NODE,
        span=peer.span,
    )


def _direct_route(peer: Node, subnet: IPNetwork) -> Operation[params.RouteNodeParams]:
    address = peer.address(subnet.version)
    assert address is not None
    return _route(peer, subnet, str(address.ip), None, "direct")


def _tunnel_route(
    cluster: Cluster, peer: Node, subnet: IPNetwork
) -> Operation[params.RouteNodeParams]:
    return _route(
        peer,
        subnet,
        vtep_address(subnet),
        cluster.routing.device,
        f"VXLAN on {cluster.routing.device}",
    )


def _neighbour(
    cluster: Cluster, peer: Node, subnet: IPNetwork
) -> Operation[params.NeighbourParams]:
    device, mac, address = cluster.routing.device, vtep_mac(cluster, peer), vtep_address(subnet)
    return Operation(
        f"{device} {address}",
        f"neighbour {address} is {mac} on {device} ({peer.name}'s VTEP)",
        params.NeighbourParams(device, address, mac),
        Phase.PEERS,
        scope=Scope.NODE,
        span=peer.span,
    )


def _fdb(cluster: Cluster, peer: Node) -> Operation[params.FdbParams]:
    device, mac = cluster.routing.device, vtep_mac(cluster, peer)
    underlay = peer.address(cluster.tunnel_family)
    assert underlay is not None
    return Operation(
        f"{device} {mac}",
        f"forward frames for {mac} to {underlay.ip} ({peer.name}) on {device}",
        params.FdbParams(device, mac, str(underlay.ip)),
        Phase.PEERS,
        scope=Scope.NODE,
        span=peer.span,
    )


def _prune(
    cluster: Cluster, planned: Sequence[Operation[Params]]
) -> Operation[params.NodePruneParams]:
    """What to keep is what the plan has; everything else netc owns for the cluster goes."""
    device = cluster.routing.device if cluster.routing.tunnels else None
    return Operation(
        f"cluster {cluster.name}",
        f"remove netc's routes, entries and devices of cluster {cluster.name} the plan does "
        "not have",
        params.NodePruneParams(
            cluster.name,
            tuple(str(c) for c in cluster.pod_cidrs),
            RTPROT_NETC,
            routes=tuple(op.params.dst for op in planned if has_params(op, params.RouteNodeParams)),
            device=device,
            neighbours=tuple(
                op.params.address for op in planned if has_params(op, params.NeighbourParams)
            ),
            fdb=tuple(op.params.lladdr for op in planned if has_params(op, params.FdbParams)),
            alias=owner_alias(cluster),
        ),
        Phase.PEERS,
        scope=Scope.NODE,
        span=cluster.span,
    )
