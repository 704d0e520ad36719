"""Checks within a cluster: between its nodes, of their underlay, and of its MTU.

Run on a cluster as far as it could be read (`compiler.lower_cluster`): two
nodes with one name or address, node subnets outside the pod CIDRs or
overlapping (hints name the lowest free block), underlay addresses inside
the pod CIDRs or missing a family the routing needs, host-gw nodes that
cannot reach each other directly, and a tunnel leaving pods too small an MTU.
In a dynamic cluster the nodes are pinned blocks: their names and blocks
are checked, their addresses are the agents' to publish at run time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from compiler.diagnostics import Diagnostic, Note
from compiler.ir import Cluster, IPInterface, IPNetwork, Node, subnet_within

MIN_MTU = {4: 576, 6: 1280}
"""The smallest MTU each family allows; IPv6 pods need 1280 end to end."""


def check_cluster(
    cluster: Cluster, taken: Sequence[Sequence[IPNetwork]] | None = None
) -> list[Diagnostic]:
    """Problems between the nodes of a cluster and with its routing.

    `taken`: the subnets of every node, those left out of the cluster for
    other errors included (default: the cluster's nodes'), so that a hint
    names a block that is really free.
    """
    if taken is None:
        taken = [n.subnets for n in cluster.nodes]
    advice = free_block(cluster.pod_cidrs, cluster.node_blocks, taken)
    return [
        *_duplicates(cluster),
        *_subnet_problems(cluster, advice),
        *_underlay_problems(cluster),
        *_mtu_problems(cluster),
    ]


def _duplicates(cluster: Cluster) -> list[Diagnostic]:
    found = []
    names: dict[str, Node] = {}
    addresses: dict[object, Node] = {}
    for node in cluster.nodes:
        other = names.setdefault(node.name, node)
        if other is not node:
            found.append(_clash(node, other, f"node `{node.name}` is listed twice"))
        for address in node.addresses:
            other = addresses.setdefault(address.ip, node)
            if other is not node and other.name != node.name:
                found.append(
                    _clash(
                        node,
                        other,
                        f"address {address.ip} of node `{node.name}` is also node `{other.name}`'s",
                    )
                )
    return found


def _clash(node: Node, other: Node, message: str) -> Diagnostic:
    return Diagnostic(
        "E603",
        message,
        node.span,
        expected="each node once, with addresses of its own",
        notes=(Note("the other one is here", other.span),) if other.span else (),
    )


def _subnet_problems(cluster: Cluster, advice: str) -> list[Diagnostic]:
    found = []
    for node in cluster.nodes:
        for subnet in node.subnets:
            home = next((c for c in cluster.pod_cidrs if c.version == subnet.version), None)
            if home is None or not subnet_within(subnet, home):
                found.append(
                    Diagnostic(
                        "E601",
                        f"subnet {subnet} of node `{node.name}` is outside the pod CIDRs",
                        node.span,
                        expected="a subnet of " + ", ".join(map(str, cluster.pod_cidrs)),
                        hint="a `block N` is always inside them",
                    )
                )
        families = {s.version for s in node.subnets}
        if families != {c.version for c in cluster.pod_cidrs}:
            found.append(
                Diagnostic(
                    "E601",
                    f"node `{node.name}` needs one subnet in each pod CIDR",
                    node.span,
                    expected="one subnet per family of " + ", ".join(map(str, cluster.pod_cidrs)),
                )
            )
    return found + _overlaps(cluster, advice)


def _overlaps(cluster: Cluster, advice: str) -> list[Diagnostic]:
    """Subnets of nodes that share addresses, each reported on the later node in the source.

    A sweep over each family's subnets in address order, remembering the one
    reaching farthest so far: a subnet starting before that end overlaps it.
    Comparing every pair instead took a second for a thousand nodes.  Within
    one family, addresses are in the order of their integers.
    """
    found = []
    for family in (4, 6):
        entries = sorted(
            (
                (subnet, index, node)
                for index, node in enumerate(cluster.nodes)
                for subnet in node.subnets
                if subnet.version == family
            ),
            key=lambda entry: (int(entry[0].network_address), entry[1]),
        )
        farthest: tuple[IPNetwork, int, Node] | None = None
        for entry in entries:
            start, end = int(entry[0].network_address), int(entry[0].broadcast_address)
            if farthest is not None and start <= int(farthest[0].broadcast_address):
                found.append(_overlap(advice, *sorted((farthest, entry), key=lambda e: e[1])))
            if farthest is None or end > int(farthest[0].broadcast_address):
                farthest = entry
    return found


def _overlap(
    advice: str, first: tuple[IPNetwork, int, Node], later: tuple[IPNetwork, int, Node]
) -> Diagnostic:
    (other_subnet, _, other), (subnet, _, node) = first, later
    return Diagnostic(
        "E601",
        f"subnet {subnet} of node `{node.name}` overlaps {other_subnet} of node `{other.name}`",
        node.span,
        expected="pod subnets that share no address",
        hint=f"give `{node.name}` a block no other node has: {advice}",
        notes=(Note(f"`{other.name}` is here", other.span),) if other.span else (),
    )


def free_block(
    cidrs: Sequence[IPNetwork], blocks: Sequence[int], taken: Iterable[Sequence[IPNetwork]]
) -> str:
    """Which block a new node should get, in words for a hint."""
    free = lowest_free_block(cidrs, blocks, taken)
    if free is None:
        return "none is free; a larger pod CIDR or smaller node blocks make room"
    return f"`block {free}` is the lowest free one"


def lowest_free_block(
    cidrs: Sequence[IPNetwork], blocks: Sequence[int], taken: Iterable[Sequence[IPNetwork]]
) -> int | None:
    """The lowest block number whose subnets no node's subnets overlap (None: all are used).

    Subnets given outright take the blocks they overlap.  A sweep over the
    taken blocks as ranges of numbers, in order: the first gap is free.
    """
    used = []
    for subnets in taken:
        for subnet in subnets:
            for pod_cidr, prefix in zip(cidrs, blocks, strict=True):
                base, size = int(pod_cidr.network_address), pod_cidr.num_addresses
                low = int(subnet.network_address) - base
                high = int(subnet.broadcast_address) - base
                if subnet.version == pod_cidr.version and high >= 0 and low < size:
                    shift = pod_cidr.max_prefixlen - prefix
                    used.append((max(low, 0) >> shift, min(high, size - 1) >> shift))
    free = 0
    for low, high in sorted(used):
        if low > free:
            break
        free = max(free, high + 1)
    count = min(2 ** (prefix - c.prefixlen) for c, prefix in zip(cidrs, blocks, strict=True))
    return free if free < count else None


def _underlay_problems(cluster: Cluster) -> list[Diagnostic]:
    """Problems of the nodes' underlay addresses; none to check when the agents publish them."""
    if cluster.membership.dynamic:
        return []
    found = []
    for node in cluster.nodes:
        found += [
            _in_pod_cidr(node, address, inside)
            for address in node.addresses
            if (inside := next((c for c in cluster.pod_cidrs if address.ip in c), None))
        ]
        found += _missing_families(cluster, node)
    return found + _apart(cluster)


def _in_pod_cidr(node: Node, address: IPInterface, pod_cidr: IPNetwork) -> Diagnostic:
    return Diagnostic(
        "E605",
        f"underlay address {address.ip} of node `{node.name}` is inside pod CIDR {pod_cidr}",
        node.span,
        expected="a node address outside the pod address space",
        hint="pods and nodes must not share addresses, or routes would loop",
    )


def _apart(cluster: Cluster) -> list[Diagnostic]:
    """host-gw nodes whose underlay subnets do not let every node reach every other directly.

    A node's route to a peer's pods goes through the peer's underlay address,
    which the kernel takes as a gateway only on the node's own subnet.  Every
    node must therefore hold every other's address in its prefix: all
    addresses lie in the narrowest of the nodes' subnets.  When they do not,
    the nodes off the subnet most nodes share are the ones reported.
    """
    if cluster.routing.mode != "host-gw":
        return []
    found = []
    for family in sorted({c.version for c in cluster.pod_cidrs}):
        placed = [(n, a) for n in cluster.nodes if (a := n.address(family))]
        if not placed:
            continue
        narrowest = max((a.network for _, a in placed), key=lambda n: n.prefixlen)
        if all(a.ip in narrowest for _, a in placed):
            continue
        counts = Counter(a.network for _, a in placed)
        shared = max(counts, key=lambda n: counts[n])
        members = [n for n, a in placed if a.network == shared]
        found += [
            _off_subnet(node, address, shared, members)
            for node, address in placed
            if not (address.ip in shared and subnet_within(shared, address.network))
        ]
    return found


def _off_subnet(
    node: Node, address: IPInterface, shared: IPNetwork, members: Sequence[Node]
) -> Diagnostic:
    others = ", ".join(f"`{n.name}`" for n in members[:3]) + (
        f" and {len(members) - 3} more" if len(members) > 3 else ""
    )
    message = (
        f"node `{node.name}` ({address}) is not on the underlay subnet {shared} of {others}"
        if address.ip not in shared
        else f"the underlay prefix of node `{node.name}` ({address}) leaves out {others} "
        f"on {shared}"
    )
    return Diagnostic(
        "E611",
        f"{message}: host-gw cannot route between them",
        node.span,
        expected=f"every node of a host-gw cluster on one IPv{shared.version} underlay subnet",
        hint="host-gw routes a node's pods through its underlay address, which the other "
        "nodes must reach directly; use `routing mixed` (host-gw within a subnet, VXLAN "
        "beyond it) or `routing vxlan`",
        notes=(Note(f"`{members[0].name}` is on {shared}", members[0].span),)
        if members[0].span
        else (),
    )


def _missing_families(cluster: Cluster, node: Node) -> list[Diagnostic]:
    needed: set[int] = set()
    if cluster.routing.mode == "host-gw":
        needed = {c.version for c in cluster.pod_cidrs}
    elif not node.address(cluster.tunnel_family):
        needed = {cluster.tunnel_family}
    missing = sorted(f for f in needed if node.address(f) is None)
    if not missing:
        return []
    why = (
        "host-gw routes each family's pod subnet through a node address of that family"
        if cluster.routing.mode == "host-gw"
        else "VXLAN between the nodes travels in one family"
    )
    return [
        Diagnostic(
            "E609",
            f"node `{node.name}` has no IPv{missing[0]} underlay address",
            node.span,
            expected=f"an IPv{missing[0]} `address`",
            hint=why,
        )
    ]


def _mtu_problems(cluster: Cluster) -> list[Diagnostic]:
    mtu = cluster.pod_mtu
    if mtu is None:
        return []
    least = max(MIN_MTU[c.version] for c in cluster.pod_cidrs)
    if mtu >= least:
        return []
    return [
        Diagnostic(
            "E606",
            f"VXLAN leaves pods an MTU of {mtu}, below the {least} "
            f"{'IPv6' if least == 1280 else 'IPv4'} needs",
            cluster.routing.span,
            expected=f"an underlay-mtu of at least {least + cluster.routing.underlay_mtu - mtu}",
            hint="raise underlay-mtu to the MTU of the network between the nodes, or use host-gw",
        )
    ]
