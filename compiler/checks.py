"""Checks across networks: what no single network can see on its own.

Two networks with one name would overwrite each other's conflist and IPAM
state; overlapping subnets would hand the same address to two pods on the
node; two networks on one bridge would share a broadcast domain and fight
over its MTU and addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from compiler.diagnostics import Diagnostic, Note
from compiler.ir import Cluster, Network, Subnet


def check_networks(networks: Sequence[Network],
                   clusters: Mapping[str, Cluster] | None = None) -> list[Diagnostic]:
    """Every cross-network problem among `networks` (and with the clusters they use)."""
    clusters = clusters or {}
    return [*_duplicate_names(networks), *_overlaps(networks), *_shared_bridges(networks),
            *_cluster_problems(networks, clusters)]


def _cluster_problems(networks: Sequence[Network], clusters: Mapping[str, Cluster]
                      ) -> list[Diagnostic]:
    """Pod CIDRs shared with another network, and pod MTUs the tunnel cannot carry."""
    found = []
    users: dict[str, Network] = {}
    for network in networks:
        ipam = network.ipam
        cluster = clusters.get(ipam.cluster) if ipam and ipam.cluster else None
        if ipam is None or cluster is None:
            found += _inside_pod_cidrs(network, clusters.values())
            continue
        other = users.setdefault(cluster.name, network)
        if other is not network:
            found.append(Diagnostic(
                "E205", f"networks `{other.name}` and `{network.name}` both draw from the node "
                f"subnets of cluster `{cluster.name}`", ipam.span,
                expected="one network per cluster",
                hint="two networks would hand the same addresses to pods on a node"))
        bridge = network.bridge
        if bridge and bridge.mtu and cluster.pod_mtu and bridge.mtu > cluster.pod_mtu:
            found.append(Diagnostic(
                "E606", f"bridge MTU {bridge.mtu} is above the {cluster.pod_mtu} that VXLAN "
                f"between the nodes of `{cluster.name}` carries", bridge.span,
                expected=f"an `mtu` of at most {cluster.pod_mtu}, or none (then it is "
                         f"{cluster.pod_mtu})",
                hint="larger packets from pods would be dropped between nodes"))
    return found


def _inside_pod_cidrs(network: Network, clusters: Iterable[Cluster]) -> list[Diagnostic]:
    found = []
    for subnet in network.ipam.subnets if network.ipam else ():
        for cluster in clusters:
            clash = next((c for c in cluster.pod_cidrs if c.version == subnet.family
                          and c.overlaps(subnet.cidr)), None)
            if clash is not None:
                found.append(Diagnostic(
                    "E205", f"subnet {subnet.cidr} overlaps pod CIDR {clash} of cluster "
                    f"`{cluster.name}`", subnet.span,
                    expected="subnets outside the cluster's pod address space",
                    hint=f"pods of `{network.name}` would take addresses the cluster's nodes "
                         "hand out"))
    return found


def _duplicate_names(networks: Sequence[Network]) -> list[Diagnostic]:
    seen: dict[str, Network] = {}
    found = []
    for network in networks:
        other = seen.setdefault(network.name, network)
        if other is not network:
            found.append(Diagnostic(
                "E102", f"network name `{network.name}` is used twice", network.span,
                expected="a name of its own for each network",
                hint="conflists, IPAM state and rule ownership are keyed by the network name",
                notes=(Note("first used here", other.span),) if other.span else ()))
    return found


def _overlaps(networks: Sequence[Network]) -> list[Diagnostic]:
    owned = [(n, s) for n in networks if n.ipam for s in n.ipam.subnets]
    found = []
    for (net_a, a), (net_b, b) in combinations(owned, 2):
        if a.cidr.version == b.cidr.version and a.cidr.overlaps(b.cidr):
            found.append(_overlap(net_a, a, net_b, b))
    return found


def _overlap(net_a: Network, a: Subnet, net_b: Network, b: Subnet) -> Diagnostic:
    where = "in the same network" if net_a is net_b else f"with network `{net_a.name}`"
    return Diagnostic(
        "E205", f"subnet {b.cidr} overlaps {a.cidr} {where}", b.span,
        expected="subnets that share no address",
        hint="pods in overlapping subnets could be given the same address",
        notes=(Note(f"{a.cidr} is here", a.span),) if a.span else ())


def _shared_bridges(networks: Sequence[Network]) -> list[Diagnostic]:
    seen: dict[str, Network] = {}
    found = []
    for network in networks:
        if network.bridge is None:
            continue
        other = seen.setdefault(network.bridge.name, network)
        if other is not network and other.name != network.name:
            found.append(Diagnostic(
                "E105", f"bridge {network.bridge.name} is used by networks `{other.name}` "
                f"and `{network.name}`", network.bridge.span,
                expected="a bridge of its own for each network",
                hint="give one of them another bridge name, such as `bridge br-"
                     f"{network.name[:11]}`",
                notes=(Note(f"`{other.name}` uses it here", other.bridge.span),)
                if other.bridge and other.bridge.span else ()))
    return found
