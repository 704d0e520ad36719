"""Checks across networks: what no single network can see on its own.

Two networks with one name would overwrite each other's conflist and IPAM
state; overlapping subnets would hand the same address to two pods on the
node; two networks on one bridge would share a broadcast domain and fight
over its MTU and addresses; two networks with the lowest priority leave the
node's default network to the order of their names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from compiler.diagnostics import Diagnostic, Note, Severity
from compiler.ir import Cluster, Network, Subnet


def check_networks(
    networks: Sequence[Network], clusters: Mapping[str, Cluster] | None = None
) -> list[Diagnostic]:
    """Every cross-network problem among `networks` (and with the clusters they use)."""
    clusters = clusters or {}
    return [
        *_duplicate_names(networks),
        *_overlaps(networks),
        *_shared_bridges(networks),
        *_cluster_problems(networks, clusters),
    ]


def default_by_name(networks: Sequence[Network]) -> list[Diagnostic]:
    """A warning when the node's default network is decided by its name alone.

    Runtimes take the lexically first conflist, `NN-name.conflist`: networks
    sharing the lowest priority are ordered by name, so renaming one, or
    adding a network that sorts earlier, silently moves new pods.  Pass only
    networks read without errors: a priority that could not be read ties
    with nothing.
    """
    unique = {n.name: n for n in reversed(networks)}.values()
    lowest = min((n.priority for n in unique), default=0)
    tied = sorted((n for n in unique if n.priority == lowest), key=lambda n: n.name)
    if len(tied) < 2:
        return []
    chosen, others = tied[0], tied[1:]
    return [
        Diagnostic(
            "W004",
            f"`{chosen.name}` is the node's default network only because its name sorts "
            f"before {_names(others)}: they share the lowest priority, {lowest}",
            chosen.span,
            expected="one network with the lowest `priority`: the node's default",
            hint=_priority_hint(lowest),
            notes=tuple(
                Note(f"`{n.name}` has priority {lowest} too", n.span) for n in others if n.span
            ),
            severity=Severity.WARNING,
        )
    ]


def _priority_hint(lowest: int) -> str:
    change = (
        f"a lower priority, such as `priority {lowest // 2}`"
        if lowest
        else "priority 0 and the others a higher one"
    )
    return (
        f"give the network pods should get by default {change}; containerd and CRI-O "
        "take the lexically first conflist"
    )


def _names(networks: Sequence[Network]) -> str:
    return ", ".join(f"`{n.name}`" for n in networks)


def _cluster_problems(
    networks: Sequence[Network], clusters: Mapping[str, Cluster]
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
            found.append(
                Diagnostic(
                    "E205",
                    f"networks `{other.name}` and `{network.name}` both draw from the node "
                    f"subnets of cluster `{cluster.name}`",
                    ipam.span,
                    expected="one network per cluster",
                    hint="two networks would hand the same addresses to pods on a node",
                )
            )
        bridge = network.bridge
        if bridge and bridge.mtu and cluster.pod_mtu and bridge.mtu > cluster.pod_mtu:
            found.append(
                Diagnostic(
                    "E606",
                    f"bridge MTU {bridge.mtu} is above the {cluster.pod_mtu} that VXLAN "
                    f"between the nodes of `{cluster.name}` carries",
                    bridge.span,
                    expected=f"an `mtu` of at most {cluster.pod_mtu}, or none (then it is "
                    f"{cluster.pod_mtu})",
                    hint="larger packets from pods would be dropped between nodes",
                )
            )
    return found


def _inside_pod_cidrs(network: Network, clusters: Iterable[Cluster]) -> list[Diagnostic]:
    found = []
    for subnet in network.ipam.subnets if network.ipam else ():
        for cluster in clusters:
            clash = next(
                (
                    c
                    for c in cluster.pod_cidrs
                    if c.version == subnet.family and c.overlaps(subnet.cidr)
                ),
                None,
            )
            if clash is not None:
                found.append(
                    Diagnostic(
                        "E205",
                        f"subnet {subnet.cidr} overlaps pod CIDR {clash} of cluster "
                        f"`{cluster.name}`",
                        subnet.span,
                        expected="subnets outside the cluster's pod address space",
                        hint=f"pods of `{network.name}` would take addresses the cluster's nodes "
                        "hand out",
                    )
                )
    return found


def _duplicate_names(networks: Sequence[Network]) -> list[Diagnostic]:
    seen: dict[str, Network] = {}
    found = []
    for network in networks:
        other = seen.setdefault(network.name, network)
        if other is not network:
            found.append(
                Diagnostic(
                    "E102",
                    f"network name `{network.name}` is used twice",
                    network.span,
                    expected="a name of its own for each network",
                    hint="conflists, IPAM state and rule ownership are keyed by the network name",
                    notes=(Note("first used here", other.span),) if other.span else (),
                )
            )
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
        "E205",
        f"subnet {b.cidr} overlaps {a.cidr} {where}",
        b.span,
        expected="subnets that share no address",
        hint="pods in overlapping subnets could be given the same address",
        notes=(Note(f"{a.cidr} is here", a.span),) if a.span else (),
    )


def _shared_bridges(networks: Sequence[Network]) -> list[Diagnostic]:
    seen: dict[str, Network] = {}
    found = []
    for network in networks:
        if network.bridge is None:
            continue
        other = seen.setdefault(network.bridge.name, network)
        if other is not network and other.name != network.name:
            found.append(
                Diagnostic(
                    "E105",
                    f"bridge {network.bridge.name} is used by networks `{other.name}` "
                    f"and `{network.name}`",
                    network.bridge.span,
                    expected="a bridge of its own for each network",
                    hint="give one of them another bridge name, such as `bridge br-"
                    f"{network.name[:11]}`",
                    notes=(Note(f"`{other.name}` uses it here", other.bridge.span),)
                    if other.bridge and other.bridge.span
                    else (),
                )
            )
    return found
