"""The overlap check between node subnets: a sweep in address order, checked against every pair.

A thousand-node cluster made comparing every pair of subnets cost a second,
so the check sorts instead; it must still report an overlap exactly when
some two nodes share addresses, and only pairs that really do.
"""

from __future__ import annotations

import ipaddress
import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from compiler.cluster_checks import check_cluster
from compiler.ir import Cluster, Node

POD_CIDR = ipaddress.ip_network("10.0.0.0/16")
SUBNETS = st.builds(
    lambda start, prefix: ipaddress.ip_network((start << 8, prefix), strict=False),
    st.integers(0, 15),
    st.integers(20, 24),
)
PAIR = re.compile(r"subnet (\S+) of node `(\S+)` overlaps (\S+) of node `(\S+)`")


def _cluster(subnets) -> Cluster:
    nodes = tuple(
        Node(f"n{i}", (ipaddress.ip_interface(f"192.168.0.{i + 1}/24"),), (s,))
        for i, s in enumerate(subnets)
    )
    return Cluster("c", (POD_CIDR,), (24,), nodes)


@given(st.lists(SUBNETS, min_size=1, max_size=12))
def test_an_overlap_is_reported_exactly_when_two_nodes_share_addresses(subnets):
    cluster = _cluster(subnets)
    reported = [PAIR.search(d.message) for d in check_cluster(cluster)]
    pairs = [m.groups() for m in reported if m]
    assert bool(pairs) == any(a.overlaps(b) for a, b in itertools.combinations(subnets, 2))
    for subnet, node, other_subnet, other in pairs:
        assert ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(other_subnet))
        assert int(node[1:]) > int(other[1:]), "reported on the later node of the source"
        assert subnets[int(node[1:])] == ipaddress.ip_network(subnet)


def test_every_node_repeating_a_subnet_is_reported_against_the_first():
    same = ipaddress.ip_network("10.0.1.0/24")
    messages = [d.message for d in check_cluster(_cluster([same, same, same]))]
    assert messages == [
        f"subnet {same} of node `n1` overlaps {same} of node `n0`",
        f"subnet {same} of node `n2` overlaps {same} of node `n0`",
    ]
