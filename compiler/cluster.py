"""A cluster network built for one node: that node's subnets, the cluster's pod CIDRs.

`netc build --node`, `netc plan --node` and the node agent all see a cluster
network through this function, so a node's conflist, its pods' plans and
its node-scoped plan agree on its subnets.  The result is an ordinary
network: the planner and the runtime need no notion of a cluster for pods.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from compiler import datatypes
from compiler.digests import sha256
from compiler.errors import Code, NetcError
from compiler.ir import Cluster, IPNetwork, Network, Node, mac_text
from compiler.lower_ipam import default_subnet


class NodeUnknown(NetcError):
    """A node name the cluster does not list."""

    code = Code.BAD_CONFIG


def cluster_of(network: Network, clusters: Iterable[Cluster]) -> Cluster | None:
    """The cluster a network draws its subnets from, if any."""
    name = network.ipam.cluster if network.ipam else None
    return next((c for c in clusters if c.name == name), None) if name else None


def node_of(cluster: Cluster, name: str) -> Node:
    """The node called `name` (`NodeUnknown` names the ones there are).

    A dynamic cluster knows only its pinned nodes before run time: any other
    node's block is the one its agent claims (or, from Kubernetes, its Node's
    podCIDRs), so nothing can be built for it from the configuration alone.
    """
    node = cluster.node(name)
    if node is None:
        known = ", ".join(n.name for n in cluster.nodes[:20]) or "none"
        if cluster.membership.source == "kubernetes":
            raise NodeUnknown(
                f"cluster {cluster.name} takes its members from the Kubernetes API: the "
                f"subnets of node {name!r} are its Node's podCIDRs, which its agent (netc "
                "agent) reads at run time, and the agent writes its conflist once it has them"
            )
        if cluster.membership.dynamic:
            raise NodeUnknown(
                f"node {name!r} has no block pinned in cluster {cluster.name}, whose members "
                f"come from {cluster.membership.source}: its block is the one its agent (netc "
                f"agent) claims at run time, and the agent writes its conflist once it holds "
                f"it (pinned nodes: {known})"
            )
        raise NodeUnknown(f"cluster {cluster.name} has no node {name!r} (nodes: {known})")
    return node


def for_node(network: Network, cluster: Cluster, node: Node) -> Network:
    """The network as `node` runs it: its subnets, the pod CIDRs, a tunnel-sized MTU."""
    assert network.ipam is not None
    subnets = tuple(default_subnet(s, node.span) for s in node.subnets)
    ipam = datatypes.replace(network.ipam, subnets=subnets, pod_cidrs=cluster.pod_cidrs)
    bridge = network.bridge
    if bridge is not None and bridge.mtu is None and cluster.pod_mtu is not None:
        bridge = datatypes.replace(bridge, mtu=cluster.pod_mtu)
    return datatypes.replace(network, ipam=ipam, bridge=bridge)


def nodes(clusters: Iterable[Cluster]) -> list[str]:
    """Every node name of the clusters, in order, each once."""
    return list(dict.fromkeys(n.name for c in clusters for n in c.nodes))


def networks_for_node(
    networks: Iterable[Network], clusters: Sequence[Cluster], node: str
) -> list[Network]:
    """Every network as `node` runs it: cluster networks built for it, others as they are."""
    built = []
    for network in networks:
        cluster = cluster_of(network, clusters)
        built.append(
            network if cluster is None else for_node(network, cluster, node_of(cluster, node))
        )
    return built


def needs_node(networks: Iterable[Network]) -> list[Network]:
    """The networks that mean nothing until built for a node (they draw from a cluster)."""
    return [
        n
        for n in networks
        if n.ipam is not None and n.ipam.cluster is not None and not n.ipam.subnets
    ]


def vtep_mac(cluster: Cluster, node: Node) -> str:
    """The MAC of a node's VXLAN device, derived from (cluster, node): every peer knows it."""
    digest = bytearray(sha256(f"{cluster.name}\0{node.name}".encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFE) | 0x02  # unicast, locally administered
    return mac_text(digest)


def block_count(cluster: Cluster) -> int:
    """How many nodes the cluster has room for: the blocks of its smallest pod CIDR."""
    return min(
        1 << (prefix - c.prefixlen)
        for c, prefix in zip(cluster.pod_cidrs, cluster.node_blocks, strict=True)
    )


def block_subnets(cluster: Cluster, index: int) -> tuple[IPNetwork, ...]:
    """A node's pod subnets from its block number: the block-th node-sized part of each CIDR."""
    subnets = []
    for pod_cidr, prefix in zip(cluster.pod_cidrs, cluster.node_blocks, strict=True):
        first = int(pod_cidr.network_address) + index * 2 ** (pod_cidr.max_prefixlen - prefix)
        subnets.append(ipaddress.ip_network((first, prefix)))
    return tuple(subnets)
