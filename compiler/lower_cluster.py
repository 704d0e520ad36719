"""Lowering `cluster NAME { ... }`: pod CIDRs, node blocks, nodes and the routing between them.

A node's pod subnets are given outright (`subnet`) or by the index of its
block (`block 3`: the fourth node-sized block of each pod CIDR).  The index
is written in the source, so adding or removing a node never moves another
node's subnet, and the order of the `node` statements decides nothing.  A
node without either is an error whose hint names the lowest free block.

With `membership etcd` (`compiler.lower_membership`) the members come and
go at run time: `node` statements are optional and pin a block to a name,
so they need `block N` and no address.  With `membership kubernetes` the
Node objects are the members, their podCIDRs their subnets: a `node`
statement has nothing to say (E621).  The checks between the nodes of a
cluster are `compiler.cluster_checks`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from compiler.ast import Statement, Word
from compiler.cluster_checks import check_cluster, free_block
from compiler.collect import Collector, body, every, first
from compiler.diagnostics import Diagnostic, Note, Severity
from compiler.identifiers import is_node_name
from compiler.ir import (
    DEFAULT_NODE_BLOCKS,
    DEFAULT_VXLAN_DEVICE,
    ROUTING_MODES,
    Cluster,
    IPInterface,
    IPNetwork,
    Membership,
    Node,
    Routing,
)
from compiler.lower_membership import lower_membership
from compiler.source import Span
from compiler.values import block_name, cidr, fail, integer, interface_name, one_word, words


def lower_cluster(statement: Statement, collector: Collector) -> Cluster | None:
    """The IR of a cluster as far as it can be read, every problem recorded in `collector`.

    None when its name, pod CIDRs, node blocks or routing cannot be read.  A
    cluster with other errors is returned with the nodes that could be read,
    so that the problems between them, of its MTU and of the networks using
    it are found in the same run; a compilation with errors builds nothing,
    so such a cluster never reaches a node.
    """
    name = collector.attempt(block_name, statement)
    statements = body(statement)
    cidrs = collector.attempt(_pod_cidrs, first(statements, "pod-cidr"), statement)
    services = first(statements, "service-cidr")
    service_cidrs = (
        collector.attempt(_service_cidrs, services) if services else (DEFAULT_SERVICE_CIDR,)
    )
    if cidrs is not None and service_cidrs is not None:
        for problem in _service_overlaps(statements, cidrs, service_cidrs):
            collector.report(problem)
    blocks = (
        None
        if cidrs is None
        else collector.attempt(_node_blocks, first(statements, "node-block"), cidrs)
    )
    routing = _routing(first(statements, "routing"), collector)
    membership = lower_membership(first(statements, "membership"), collector)
    node_statements = every(statements, "node")
    if membership.source == "kubernetes":
        for problem in map(_kubernetes_node, node_statements):
            collector.report(problem)
        node_statements = []
    placements = [
        collector.attempt(_placement, s, cidrs, blocks, membership) for s in node_statements
    ]
    taken = [p[1] for p in placements if p]
    advice = None if cidrs is None or blocks is None else free_block(cidrs, blocks, taken)
    nodes = [
        n
        for s, p in zip(node_statements, placements, strict=True)
        if (n := _node(s, p, advice, membership, collector))
    ]
    if name is None or cidrs is None or blocks is None or routing is None:
        return None
    cluster = Cluster(name, cidrs, blocks, tuple(nodes), routing, statement.span, membership)
    for problem in check_cluster(cluster, taken):
        collector.report(problem)
    return cluster


def _pod_cidrs(statement: Statement | None, cluster: Statement) -> tuple[IPNetwork, ...]:
    if statement is None:
        raise fail(
            "E012",
            "this cluster has no `pod-cidr`",
            cluster.key.span,
            expected="`pod-cidr CIDR [CIDR]`, at most one per address family",
            hint="kubeadm's default is `pod-cidr 10.244.0.0/16`",
        )
    return _one_per_family(statement, "a larger CIDR gives room for more nodes")


def _one_per_family(statement: Statement, hint: str) -> tuple[IPNetwork, ...]:
    """`pod-cidr` or `service-cidr`: one IPv4 and/or one IPv6 CIDR."""
    found = [cidr(w) for w in words(statement, 1, 2, "one IPv4 and/or one IPv6 CIDR")]
    if len({c.version for c in found}) != len(found):
        raise fail(
            "E013",
            f"`{statement.keyword}` gives two CIDRs of one family",
            statement.span,
            expected="at most one IPv4 and one IPv6 CIDR",
            hint=hint,
        )
    return tuple(found)


DEFAULT_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
"""kube-apiserver's and kubeadm's default --service-cluster-ip-range (IPv4 only)."""


def _service_cidrs(statement: Statement) -> tuple[IPNetwork, ...]:
    return _one_per_family(
        statement,
        "a cluster has one Service CIDR per family (kube-apiserver's --service-cluster-ip-range)",
    )


def _service_overlaps(
    statements: tuple[Statement, ...], cidrs: Sequence[IPNetwork], services: Sequence[IPNetwork]
) -> list[Diagnostic]:
    """Pod CIDRs must leave the Service CIDRs alone: a pod address would shadow a Service's.

    Against a `service-cidr` given, an error; against Kubernetes' default,
    a warning (the cluster may use another range).
    """
    pod, given = first(statements, "pod-cidr"), first(statements, "service-cidr")
    assert pod is not None
    found = []
    for value, pod_cidr in zip(pod.values, cidrs, strict=True):
        clash = next(
            (s for s in services if s.version == pod_cidr.version and s.overlaps(pod_cidr)), None
        )
        if clash is not None:
            found.append(_service_overlap(value.span, pod_cidr, clash, given))
    return found


def _service_overlap(
    span: Span | None, pod_cidr: IPNetwork, service: IPNetwork, given: Statement | None
) -> Diagnostic:
    if given is not None:
        return Diagnostic(
            "E612",
            f"pod CIDR {pod_cidr} overlaps the cluster's Service CIDR {service}",
            span,
            expected="pod CIDRs that share no address with the Service CIDRs",
            hint="pods and Services would claim the same addresses; choose another pod CIDR",
            notes=(Note("the Service CIDR is given here", given.span),),
        )
    return Diagnostic(
        "W005",
        f"pod CIDR {pod_cidr} overlaps {service}, the Service CIDR Kubernetes uses by default",
        span,
        expected="a pod CIDR apart from the cluster's Service CIDR",
        hint="if the cluster's Services use another range (kube-apiserver's "
        "--service-cluster-ip-range), name it with `service-cidr CIDR` in the cluster; "
        "else choose another pod CIDR, such as kubeadm's 10.244.0.0/16",
        severity=Severity.WARNING,
    )


def _node_blocks(statement: Statement | None, cidrs: Sequence[IPNetwork]) -> tuple[int, ...]:
    if statement is None:
        return tuple(DEFAULT_NODE_BLOCKS[c.version] for c in cidrs)
    given = words(statement, len(cidrs), len(cidrs), "one prefix length per pod CIDR, in order")
    return tuple(_block(word, c) for word, c in zip(given, cidrs, strict=True))


def _block(word: Word, pod_cidr: IPNetwork) -> int:
    most = 30 if pod_cidr.version == 4 else 126
    prefix = integer(Word(word.text.removeprefix("/"), word.span), 0, 128, "a prefix length")
    if not pod_cidr.prefixlen < prefix <= most:
        raise fail(
            "E604",
            f"node blocks of /{prefix} do not fit pod CIDR {pod_cidr}",
            word.span,
            expected=f"a prefix from /{pod_cidr.prefixlen + 1} to /{most}",
            hint="a node block is a part of the pod CIDR, large enough for its pods",
        )
    return prefix


def _routing(statement: Statement | None, collector: Collector) -> Routing | None:
    """`routing MODE { ... }`; None when the mode or the underlay MTU cannot be read.

    The MTU checks depend on those two; a bad VNI, port or device name is
    reported and left at its default, as no check depends on it.
    """
    if statement is None:
        return Routing()
    mode = collector.attempt(_mode, statement)
    settings = body(statement)
    if mode == "host-gw":
        for setting in (s for s in settings if s.keyword in VXLAN_SETTINGS):
            collector.report(_without_tunnel(setting, explicit=bool(statement.values)))
    unreadable = []

    def number(keyword: str, low: int, high: int, default: int) -> int:
        found = first(settings, keyword)
        value = collector.attempt(_number, found, low, high) if found else default
        if value is None:
            unreadable.append(keyword)
        return default if value is None else value

    device = first(settings, "device")
    name = collector.attempt(_device, device) if device else None
    routing = Routing(
        mode or "host-gw",
        number("vni", 1, 2**24 - 1, 1),
        number("port", 1, 65535, 8472),
        name or DEFAULT_VXLAN_DEVICE,
        number("underlay-mtu", 1280, 65535, 1500),
        statement.span,
    )
    return None if mode is None or "underlay-mtu" in unreadable else routing


VXLAN_SETTINGS = ("vni", "port", "device", "underlay-mtu")
"""The settings of `routing` that only the VXLAN tunnel uses."""


def _without_tunnel(setting: Statement, explicit: bool) -> Diagnostic:
    """E610: a VXLAN setting under host-gw routing, which has no tunnel to apply it to."""
    keyword = setting.keyword
    mode = "host-gw" if explicit else "host-gw (a `routing` without a mode)"
    return Diagnostic(
        "E610",
        f"`{keyword}` has no effect with {mode}",
        setting.key.span,
        expected="`routing vxlan { ... }` or `routing mixed { ... }` for VXLAN settings",
        hint="host-gw routes pods through the nodes' underlay addresses, without a tunnel: "
        f"write `routing vxlan` or `routing mixed` if the nodes need one, else remove "
        f"`{keyword}`",
    )


def _number(statement: Statement, low: int, high: int) -> int:
    what = f"a number from {low} to {high}"
    return integer(one_word(statement, what), low, high, what)


def _device(statement: Statement) -> str:
    return interface_name(one_word(statement, "an interface name"), "VXLAN device")


def _mode(statement: Statement) -> str:
    """The routing mode; host-gw when none is written."""
    if not statement.values:
        return "host-gw"
    mode = one_word(statement, "host-gw, vxlan or mixed")
    if mode.text not in ROUTING_MODES:
        raise fail(
            "E013",
            f"`{mode.text}` is not a routing mode",
            mode.span,
            expected="host-gw, vxlan or mixed",
            hint="host-gw needs the nodes on one L2 segment; vxlan works across routers",
        )
    return mode.text


Placement = tuple[int | None, tuple[IPNetwork, ...]]
"""A node's block number (None for subnets given outright) and its pod subnets."""
UNPLACED: Placement = (None, ())
"""A node with neither `block` nor `subnet`."""


def _node(
    statement: Statement,
    placement: Placement | None,
    advice: str | None,
    membership: Membership,
    collector: Collector,
) -> Node | None:
    """A node, or None with every problem of its name and addresses recorded.

    `placement` is None when its subnets could not be read (reported) or not
    placed because the cluster's pod CIDRs or node blocks could not be read;
    `advice` names the lowest free block, for the hint of a node without one.
    In a dynamic cluster a node pins a block to a name: its address, which
    the agent publishes, is optional and, when given, unused (W007).
    """
    name = collector.attempt(_node_name, statement)
    settings = body(statement)
    given = first(settings, "address")
    addresses = (
        ()
        if membership.dynamic and given is None
        else collector.attempt(_addresses, given, statement)
    )
    if membership.dynamic and given is not None and addresses:
        collector.report(_unused_address(given, membership))
        addresses = ()
    if placement == UNPLACED:
        collector.report(_unplaced(statement, advice, membership))
    if name is None or addresses is None or placement is None or placement == UNPLACED:
        return None
    index, subnets = placement
    return Node(name, addresses, subnets, index, statement.span)


def _kubernetes_node(statement: Statement) -> Diagnostic:
    """E621: a cluster of Kubernetes' Nodes takes each node's subnets from its Node."""
    return Diagnostic(
        "E621",
        "a cluster whose members are Kubernetes' Nodes has no `node` statements",
        statement.key.span,
        expected="no `node` statement under `membership kubernetes`",
        hint="each node's subnets are its Node's spec.podCIDRs, which kube-controller-manager "
        "assigns (--allocate-node-cidrs): remove this statement, or choose `membership "
        "etcd` to pin blocks to names",
    )


def _unused_address(statement: Statement, membership: Membership) -> Diagnostic:
    return Diagnostic(
        "W007",
        f"`address` is not used: in a cluster whose members come from "
        f"{membership.source}, the node's agent publishes its own",
        statement.key.span,
        expected="a `node` with `block N` only",
        hint="remove it; the agent publishes the address given with `netc agent "
        "--node-address`, else that of the interface holding the default route",
        severity=Severity.WARNING,
    )


def _addresses(statement: Statement | None, node: Statement) -> tuple[IPInterface, ...]:
    if statement is None:
        raise fail(
            "E012",
            "this node has no `address`",
            node.key.span,
            expected="`address ADDRESS/PREFIX` on the network between nodes",
            hint="the address other nodes route this node's pods through",
        )
    return tuple(
        _interface(w) for w in words(statement, 1, 2, "one IPv4 and/or one IPv6 address/prefix")
    )


def _placement(
    statement: Statement,
    cidrs: Sequence[IPNetwork] | None,
    blocks: Sequence[int] | None,
    membership: Membership,
) -> Placement | None:
    """The node's block number and subnets; `UNPLACED` without either, None when unknown.

    Without the cluster's pod CIDRs and node blocks nothing can be placed:
    only giving both `block` and `subnet` is then an error.  A dynamic
    cluster's node pins a block: a subnet given outright is refused (E619),
    since the agents claim and watch blocks by number.
    """
    settings = body(statement)
    block = first(settings, "block")
    subnet = first(settings, "subnet")
    if block is not None and subnet is not None:
        raise fail(
            "E607",
            "this node has both `block` and `subnet`",
            statement.key.span,
            expected="one of them",
            hint="`block N` picks the subnets; `subnet` gives them outright",
        )
    if subnet is not None and membership.dynamic:
        raise fail(
            "E619",
            f"a node of a cluster whose members come from {membership.source} "
            "pins a block, not a subnet",
            subnet.key.span,
            expected="`block N`",
            hint="the agents claim blocks by number: write the number of the block "
            "that holds these subnets (`block 1` is the second node-sized block "
            "of each pod CIDR)",
        )
    if block is None and subnet is None:
        return UNPLACED
    if cidrs is None or blocks is None:
        return None
    if block is not None:
        index = integer(one_word(block, "a block number"), 0, 2**64, "a block number")
        return index, _subnets_of_block(index, block, cidrs, blocks)
    assert subnet is not None
    return None, tuple(
        cidr(w) for w in words(subnet, len(cidrs), len(cidrs), "one CIDR per pod CIDR")
    )


def _node_name(statement: Statement) -> str:
    word = one_word(statement, "a Kubernetes node name")
    if not is_node_name(word.text):
        raise fail(
            "E101",
            f"`{word.text}` is not a Kubernetes node name",
            word.span,
            expected="lower-case letters, digits, `-` and `.`, at most 253 characters, "
            "starting and ending with a letter or digit",
            hint="use the name `kubectl get nodes` shows",
        )
    return word.text


def _interface(word: Word) -> IPInterface:
    if "/" not in word.text:
        raise fail(
            "E201",
            f"`{word.text}` has no prefix length",
            word.span,
            expected="an address with the prefix of its subnet, such as 192.168.1.11/24",
            hint="the prefix tells which nodes share this node's underlay subnet",
        )
    try:
        return ipaddress.ip_interface(word.text)
    except ValueError:
        raise fail(
            "E201",
            f"`{word.text}` is not an address with a prefix",
            word.span,
            expected="an address such as 192.168.1.11/24",
        ) from None


def _unplaced(statement: Statement, advice: str | None, membership: Membership) -> Diagnostic:
    """E607 for a node without `block` or `subnet`, naming the lowest free block."""
    free = f": {advice}" if advice else ""
    if membership.dynamic:
        return Diagnostic(
            "E607",
            "this node pins no block",
            statement.key.span,
            expected="`block N`",
            hint=f"in a cluster whose members come from {membership.source}, a `node` "
            f"reserves a block for its name{free}; without the `node` statement its "
            "agent claims a free block",
        )
    return Diagnostic(
        "E607",
        "this node has no pod subnet",
        statement.key.span,
        expected="`block N` or `subnet CIDR...`",
        hint=f"give it a block no other node has{free};"
        " blocks are never reused automatically, so adding a node moves no "
        "other node's subnet",
    )


def _subnets_of_block(
    index: int, statement: Statement, cidrs: Sequence[IPNetwork], blocks: Sequence[int]
) -> tuple[IPNetwork, ...]:
    subnets = []
    for pod_cidr, prefix in zip(cidrs, blocks, strict=True):
        count = 2 ** (prefix - pod_cidr.prefixlen)
        if index >= count:
            raise fail(
                "E602",
                f"block {index} is outside pod CIDR {pod_cidr}",
                statement.values[0].span,
                expected=f"a block from 0 to {count - 1}: {pod_cidr} holds {count} "
                f"blocks of /{prefix}",
                hint="a larger pod CIDR or a smaller node block makes room for more nodes",
            )
        first_address = int(pod_cidr.network_address) + index * 2 ** (
            pod_cidr.max_prefixlen - prefix
        )
        subnets.append(ipaddress.ip_network((first_address, prefix)))
    return tuple(subnets)
