"""Members as the node plan reads them: the same plans from a datastore's members as from
`node` statements, member records checked, blocks chosen."""

from __future__ import annotations

import ipaddress
import json

import pytest

from compiler import datatypes
from compiler.cluster import block_count, networks_for_node
from compiler.ir import Cluster, Membership, Routing
from compiler.membership import (
    BadRecord,
    Member,
    Members,
    choose_block,
    members_of,
    read_member,
    routable,
    with_members,
)
from compiler.pipeline import compile_sources
from compiler.planner.node import node_plan
from compiler.source import SourceFile
from tests.support import compile_example, portable


def _cluster():
    compilation, _ = compile_example("cluster")
    (cluster,) = compilation.clusters
    return cluster, compilation.networks


def _members_of(cluster) -> Members:
    return Members.of(7, [Member(n.name, n.block, n.addresses) for n in cluster.nodes])


def test_a_node_plans_the_same_from_members_as_from_node_statements():
    cluster, networks = _cluster()
    dynamic = with_members(datatypes.replace(cluster, nodes=()), _members_of(cluster))
    for node in cluster.nodes:
        static = node_plan(cluster, node.name, networks_for_node(networks, [cluster], node.name))
        live = node_plan(dynamic, node.name, networks_for_node(networks, [dynamic], node.name))
        assert [(o.kind, o.target, o.params) for o in live.operations] == [
            (o.kind, o.target, o.params) for o in static.operations
        ]
        assert portable(live.operations[-1].params) == portable(static.operations[-1].params)


def test_a_static_clusters_members_make_the_cluster_again():
    compilation = compile_sources(
        [
            SourceFile(
                "c.netdsl",
                """
cluster c {
    pod-cidr 10.244.0.0/16
    node a { address 192.168.1.1/24; block 3 }
    node b { address 192.168.1.2/24; subnet 10.244.200.0/24 }
}
""",
            )
        ]
    )
    (cluster,) = compilation.clusters
    assert with_members(cluster, members_of(cluster)) == cluster


def test_a_record_reads_back_as_the_member_it_was():
    cluster, _ = _cluster()
    member = _members_of(cluster).get("node-b")
    assert read_member(cluster, "node-b", member.record()) == member
    leaving = datatypes.replace(member, leaving=True)
    assert read_member(cluster, "node-b", leaving.record()).leaving


def _record(**changes):
    document = {
        "format": 1,
        "node": "node-x",
        "block": 5,
        "addresses": ["192.168.10.15/24"],
    } | changes
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a member record"),
        (_record(format=2), "not a member record"),
        (_record(node="node-y"), "stored as 'node-x'"),
        (_record(block=True), "is not one of the"),
        (_record(block=256), "block 256 is not one of the 256 blocks"),
        (_record(block=-1), "is not one of"),
        (_record(block="5"), "is not one of"),
        (_record(addresses=[]), "not a list of one or two"),
        (_record(addresses=["192.168.10.15"]), "not an address with its prefix"),
        (_record(addresses=["10.244.9.9/16"]), "inside the pod CIDRs"),
        (_record(addresses=["192.168.10.15/24", "192.168.10.16/24"]), "two addresses of one"),
        (_record(addresses=[{"ip": 1}]), "is not an address"),
        (b'{"format": 1, "pad": "' + b"x" * 5000 + b'"}', "more than 4096"),
        (b"[" * 4000, "not JSON"),
    ],
)
def test_records_netc_did_not_write_are_refused_with_the_reason(value, why):
    cluster, _ = _cluster()
    with pytest.raises(BadRecord, match=why):
        read_member(cluster, "node-x", value)


def test_two_members_claiming_one_block_give_it_to_the_first_by_name():
    cluster, _ = _cluster()
    address = _members_of(cluster).get("node-a").addresses
    members = Members.of(1, [Member("node-z", 4, address), Member("node-y", 4, address)])
    assert [n.name for n in with_members(cluster, members).nodes] == ["node-y"]


def test_the_block_a_node_claims():
    cluster, _ = _cluster()
    pinned = datatypes.replace(cluster, nodes=cluster.nodes[:1])  # node-a pinned to block 1
    assert choose_block(pinned, "node-a", {1: "node-q"}) == 1, "a pinned block is its own"
    first = choose_block(pinned, "node-n", {})
    assert first is not None and first != 1
    assert choose_block(pinned, "node-n", {}) == first, "the same state, the same block"
    after = choose_block(pinned, "node-n", {first: "node-m"})
    assert after not in (first, 1, None)
    assert choose_block(pinned, "node-n", {0: "node-m"}, remembered=7) == 7
    assert choose_block(pinned, "node-n", {7: "node-n"}, remembered=7) == 7
    assert choose_block(pinned, "node-n", {7: "node-m"}, remembered=7) not in (7, 1, None)
    assert choose_block(pinned, "node-n", {}, remembered=1) != 1, "remembered, but pinned"
    count = block_count(cluster)
    assert choose_block(pinned, "node-n", {b: f"n{b}" for b in range(count) if b != 9}) == 9
    assert choose_block(pinned, "node-n", {b: f"n{b}" for b in range(count) if b != 1}) is None


def test_nodes_starting_together_mostly_try_different_blocks():
    cluster, _ = _cluster()
    firsts = {choose_block(cluster, f"node-{i}", {}) for i in range(50)}
    assert len(firsts) > 40, "claims would collide"


def _dynamic(mode: str, *cidrs: str):
    return Cluster(
        "c",
        tuple(ipaddress.ip_network(c) for c in cidrs),
        tuple(24 if "." in c else 64 for c in cidrs),
        (),
        Routing(mode),
        membership=Membership("etcd", ("https://10.0.0.1:2379",)),
    )


def _member(name: str, block: int, *addresses: str) -> Member:
    return Member(name, block, tuple(ipaddress.ip_interface(a) for a in addresses))


def test_members_no_route_could_reach_are_left_out_with_the_reason():
    members = Members.of(
        3,
        [
            _member("a", 0, "192.168.1.1/24", "fd00:1::1/64"),
            _member("b", 1, "192.168.1.2/24"),
            _member("c", 2, "fd00:1::3/64"),
            _member("d", 3, "192.168.2.4/24", "fd00:1::4/64"),
        ],
    )
    kept, why = routable(_dynamic("vxlan", "10.244.0.0/16"), "a", members)
    assert [m.name for m in kept.members] == ["a", "b", "d"]
    assert why == (
        "member c is left out: it has no IPv4 underlay address, and VXLAN between "
        "the nodes runs over IPv4",
    )
    kept, why = routable(_dynamic("host-gw", "10.244.0.0/16", "fd00:10:244::/56"), "a", members)
    assert [m.name for m in kept.members] == ["a"]
    assert [w.split(":")[0] for w in why] == [
        "member b is left out",
        "member c is left out",
        "member d is left out",
    ]
    assert "192.168.2.4 is not on this node's underlay subnet 192.168.1.0/24" in why[2]
    assert routable(_dynamic("mixed", "10.244.0.0/16"), "a", members)[0].get("d") is not None
