"""Lowering `ipam { ... }`: subnets, ranges, gateways, routes and DNS.

The defaults are host-local's, so a network moves between the reference
plugins and netc without an address changing meaning: the gateway and the
first address handed out are the subnet's first address, the last handed out
is the one before the IPv4 broadcast (the last address for IPv6).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from itertools import islice

from compiler.ast import Statement, Word
from compiler.collect import Collector, body, every, first, together
from compiler.diagnostics import Diagnostic
from compiler.ir import DEFAULT_DATA_DIR, Cluster, Dns, IPAddress, Ipam, IPNetwork, PodRoute, Subnet
from compiler.source import Span
from compiler.values import address, cidr, fail, one_word, switch, text, words


def lower_ipam(
    statement: Statement, collector: Collector, clusters: Mapping[str, Cluster | None]
) -> Ipam | None:
    """The IR of an ipam block, or None if it has errors (recorded in `collector`).

    With `cluster NAME` the block has no subnets of its own: each node's come
    from the cluster when the network is built for that node.  `clusters`
    holds every cluster of the input, None for one with errors.
    """
    statements = body(statement)
    subnets = collector.each(lower_subnet, every(statements, "subnet"))
    cluster = _cluster(statement, clusters, collector)
    families = {s.family for s in subnets}
    if cluster is not None:
        families = {c.version for c in cluster.pod_cidrs}
    pods = _pod_subnets(cluster, subnets, len(subnets) == len(every(statements, "subnet")))
    routes = collector.each(lambda s: lower_route(s, families, pods), every(statements, "route"))
    dns_statement = first(statements, "dns")
    dns = lower_dns(dns_statement, collector) if dns_statement else None
    data_dir_statement = first(statements, "data-dir")
    data_dir = DEFAULT_DATA_DIR
    if data_dir_statement:
        data_dir = collector.attempt(absolute_path, data_dir_statement) or DEFAULT_DATA_DIR
    static_ips = _switch(first(statements, "static-ips"), collector)
    node_local_statement = first(statements, "node-local")
    node_local = _switch(node_local_statement, collector)
    if node_local and node_local_statement and first(statements, "cluster"):
        collector.report(
            Diagnostic(
                "E106",
                "`node-local` says every node has these subnets, `cluster` that each has its own",
                node_local_statement.span,
                expected="one of them",
                hint="a cluster network's addresses are unique across the cluster: remove "
                "`node-local`",
            )
        )
    return Ipam(
        tuple(subnets),
        tuple(routes),
        dns,
        data_dir,
        statement.span,
        cluster.name if cluster else None,
        static_ips,
        node_local=node_local,
    )


def _switch(statement: Statement | None, collector: Collector) -> bool:
    """An on/off setting (off when absent or unreadable)."""
    return bool(collector.attempt(switch, statement)) if statement else False


def _cluster(
    statement: Statement, clusters: Mapping[str, Cluster | None], collector: Collector
) -> Cluster | None:
    """The cluster an ipam block draws from; exactly one of `cluster` and `subnet`."""
    statements = body(statement)
    named = first(statements, "cluster")
    if named is None:
        if not every(statements, "subnet") and statement.block is not None:
            collector.report(
                Diagnostic(
                    "E012",
                    "this ipam block has no subnet",
                    statement.span,
                    expected="at least one `subnet CIDR`, or `cluster NAME`",
                    hint="add a line such as `subnet 10.244.1.0/24`",
                )
            )
        return None
    if every(statements, "subnet"):  # reported, and the cluster still read for the checks
        collector.report(
            Diagnostic(
                "E608",
                "this ipam block has both `cluster` and `subnet`",
                named.span,
                expected="the cluster's node subnets or subnets of its own, not both",
                hint="with `cluster`, each node's pods get that node's subnets",
            )
        )
    word = collector.attempt(one_word, named, "a cluster name")
    if word is None:
        return None
    if word.text not in clusters:
        collector.report(
            Diagnostic(
                "E608",
                f"there is no cluster `{word.text}`",
                word.span,
                expected="the name of a `cluster` block in the input files",
                hint="compile the file that defines the cluster together with this one"
                if not clusters
                else "known clusters: " + ", ".join(f"`{n}`" for n in clusters),
            )
        )
        return None
    return clusters[word.text]


def absolute_path(statement: Statement) -> str:
    """A directory given as an absolute path (the runtime has no useful working directory)."""
    path = text(statement, "an absolute directory path")
    if not path.startswith("/"):
        raise fail(
            "E013",
            f"`{path}` is not an absolute path",
            statement.values[0].span,
            expected="a path starting with /",
            hint="CNI plugins run with no predictable working directory",
        )
    return posixpath.normpath(path)


def lower_subnet(statement: Statement) -> Subnet:
    """`subnet CIDR [{ range A .. B; gateway G }]` with host-local's defaults."""
    network = cidr(one_word(statement, "a CIDR such as 10.244.1.0/24"))
    if network.num_addresses < 4:
        raise fail(
            "E207",
            f"subnet {network} is too small to hand out addresses",
            statement.values[0].span,
            expected="a prefix of at most /30 (IPv4) or /126",
            hint="host-local refuses /31, /32, /127 and /128 as well",
        )
    inner = body(statement)
    range_statement = first(inner, "range")
    gateway_statement = first(inner, "gateway")
    start, end = _default_range(network)
    if range_statement:
        start, end = _range(range_statement, network)
    gateway = network.network_address + 1
    if gateway_statement:
        gateway = _gateway(gateway_statement, network)
    return Subnet(
        network,
        start,
        end,
        gateway,
        statement.span,
        explicit_range=range_statement is not None,
        explicit_gateway=gateway_statement is not None,
    )


def default_subnet(network: IPNetwork, span: Span | None) -> Subnet:
    """A subnet with host-local's range and gateway (a node's share of a cluster)."""
    start, end = _default_range(network)
    return Subnet(network, start, end, network.network_address + 1, span)


def _default_range(network: IPNetwork) -> tuple[IPAddress, IPAddress]:
    last = network.broadcast_address - 1 if network.version == 4 else network.broadcast_address
    return network.network_address + 1, last


def _range(statement: Statement, network: IPNetwork) -> tuple[IPAddress, IPAddress]:
    values = words(statement, 1, 3, "FIRST .. LAST")
    joined = "".join(w.text for w in values)
    first_text, dots, last_text = joined.partition("..")
    if not dots:
        raise fail(
            "E013",
            "a range is written FIRST .. LAST",
            statement.span,
            expected="two addresses separated by `..`",
            hint=f"for example `range {network.network_address + 10} .. "
            f"{network.network_address + 250}`",
        )
    span = values[0].span.cover(values[-1].span)
    start, end = together((address, Word(first_text, span)), (address, Word(last_text, span)))
    for point in (start, end):
        if point not in network:
            raise fail(
                "E203",
                f"range address {point} is outside subnet {network}",
                span,
                expected=f"addresses inside {network}",
            )
    if end < start:
        raise fail(
            "E203",
            f"range {start} .. {end} runs backwards",
            span,
            expected="FIRST .. LAST with FIRST before LAST",
            hint=f"write `range {end} .. {start}`",
        )
    return start, end


def _gateway(statement: Statement, network: IPNetwork) -> IPAddress:
    word = one_word(statement, "an address inside the subnet")
    gateway = address(word)
    reserved = network.version == 4 and gateway in (
        network.network_address,
        network.broadcast_address,
    )
    if gateway not in network or reserved:
        raise fail(
            "E204",
            f"gateway {gateway} is not a usable address of subnet {network}",
            word.span,
            expected=f"a host address inside {network}",
            hint=f"the usual gateway is {network.network_address + 1}",
        )
    return gateway


PodSubnets = Sequence[tuple[str | None, Sequence[IPNetwork]]]
"""The subnets a pod may be on: the network's (None), or those of each node of a cluster
(`node `a``: who holds them, in words)."""


def _pod_subnets(cluster: Cluster | None, subnets: Sequence[Subnet], complete: bool) -> PodSubnets:
    """Where pods get their addresses, for checking next hops (nothing when not all known)."""
    if cluster is not None:
        return [*((f"node `{n.name}`", n.subnets) for n in cluster.nodes), *_claimable(cluster)]
    return [(None, [s.cidr for s in subnets])] if complete else []


def _claimable(cluster: Cluster) -> PodSubnets:
    """Blocks the agents of a dynamic cluster may claim: the first two nobody pins.

    Any node may get any such block, and no address lies in two blocks: a
    next hop inside one is outside the other.
    """
    if not cluster.membership.dynamic:
        return []
    pinned = {n.block for n in cluster.nodes}
    blocks = zip(
        *(
            c.subnets(new_prefix=prefix)
            for c, prefix in zip(cluster.pod_cidrs, cluster.node_blocks, strict=True)
        ),
        strict=False,
    )  # the fewest
    free = ((index, subnets) for index, subnets in enumerate(blocks) if index not in pinned)
    return [
        (f"a node that claims block {index} from {cluster.membership.source}", subnets)
        for index, subnets in islice(free, 2)
    ]


def lower_route(statement: Statement, families: set[int], pods: PodSubnets) -> PodRoute:
    """`route CIDR [via ADDRESS]`; the family must be one the pods have.

    A pod reaches a next hop only on its own subnet (or IPv6 link-local), so
    a `via` must lie in one of the subnets of its family, on every node.
    """
    values = words(statement, 1, 3, "a destination CIDR, optionally `via` an address")
    if len(values) == 1:
        return _route_to(cidr(values[0]), None, values, families, statement)
    if len(values) != 3 or values[1].text != "via":
        raise fail(
            "E206",
            "a route is written `route CIDR` or `route CIDR via ADDRESS`",
            values[1].span,
            expected="`via` followed by the next-hop address",
        )
    destination, via = together((cidr, values[0]), (address, values[2]))
    route = _route_to(destination, via, values, families, statement)
    _check_next_hop(via, values[2], pods)
    return route


def _route_to(
    destination: IPNetwork,
    via: IPAddress | None,
    values: Sequence[Word],
    families: set[int],
    statement: Statement,
) -> PodRoute:
    if via is not None and via.version != destination.version:
        raise fail(
            "E206",
            f"next hop {via} is not of the family of {destination}",
            values[2].span,
            expected=f"an IPv{destination.version} address",
        )
    if families and destination.version not in families:
        raise fail(
            "E206",
            f"route to {destination} but pods get no IPv{destination.version} address",
            values[0].span,
            expected="a route of a family one of the subnets has",
            hint=f"add an IPv{destination.version} subnet or remove the route",
        )
    return PodRoute(destination, via, statement.span)


def _check_next_hop(via: IPAddress, word: Word, pods: PodSubnets) -> None:
    """E206 when some pod would have no direct way to the next hop: every ADD would fail."""
    if via.version == 6 and via.is_link_local:
        return
    for node, subnets in pods:
        family = [s for s in subnets if s.version == via.version]
        if family and not any(via in s for s in family):
            where = (
                f"the pod subnet {family[0]} of {node}"
                if node is not None
                else f"every IPv{via.version} subnet of the network"
            )
            raise fail(
                "E206",
                f"next hop {via} is outside {where}",
                word.span,
                expected="an address on the pods' own subnet, such as "
                f"{family[0].network_address + 1}",
                hint="a pod reaches a next hop only on its own subnet; leave out `via` "
                "to route through the gateway"
                + (", which each node has on its own subnet" if node is not None else ""),
            )


def lower_dns(statement: Statement, collector: Collector) -> Dns:
    """`dns { nameservers ...; search ...; domain ...; options ... }`, every bad value reported."""
    statements = body(statement)

    def listed(keyword: str, what: str) -> list[Word]:
        return [
            w
            for s in every(statements, keyword)
            for w in collector.attempt(words, s, 1, None, what) or []
        ]

    servers = collector.each(address, listed("nameservers", "DNS server addresses"))
    search = [w.text for w in listed("search", "domain names")]
    options = [w.text for w in listed("options", "resolver options")]
    domain_statement = first(statements, "domain")
    domain = None
    if domain_statement:
        word = collector.attempt(one_word, domain_statement, "a domain name")
        domain = word.text if word else None
    return Dns(tuple(servers), domain, tuple(search), tuple(options), statement.span)
