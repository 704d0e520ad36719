"""host-gw needs every node to reach every other directly: each address in each node's prefix.

The check compares the addresses with the narrowest subnet instead of every
pair; it must still refuse a cluster exactly when some node's route to a
peer would have a gateway off its own subnet.
"""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given
from hypothesis import strategies as st

from compiler.cluster_checks import check_cluster
from compiler.ir import Cluster, Node, Routing

POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
ADDRESSES = st.builds(
    lambda third, host, prefix: ipaddress.ip_interface(f"192.168.{third}.{host}/{prefix}"),
    st.integers(0, 3),
    st.integers(1, 254),
    st.integers(22, 25),
)


def _cluster(addresses, mode="host-gw") -> Cluster:
    nodes = tuple(
        Node(f"n{i}", (a,), (ipaddress.ip_network(f"10.244.{i}.0/24"),), i)
        for i, a in enumerate(addresses)
    )
    return Cluster("c", (POD_CIDR,), (24,), nodes, Routing(mode))


def _apart(cluster: Cluster) -> list[str]:
    return [d.message for d in check_cluster(cluster) if d.code == "E611"]


@given(st.lists(ADDRESSES, min_size=1, max_size=8, unique_by=lambda a: a.ip))
def test_host_gw_is_refused_exactly_when_some_node_cannot_reach_a_peer_directly(addresses):
    unreachable = any(b.ip not in a.network for a, b in itertools.permutations(addresses, 2))
    assert bool(_apart(_cluster(addresses))) == unreachable


@given(st.lists(ADDRESSES, min_size=2, max_size=8, unique_by=lambda a: a.ip))
def test_mixed_and_vxlan_route_across_subnets(addresses):
    assert not _apart(_cluster(addresses, "mixed"))
    assert not _apart(_cluster(addresses, "vxlan"))


def test_the_node_off_the_subnet_most_nodes_share_is_the_one_reported():
    addresses = [
        ipaddress.ip_interface(a)
        for a in ("192.168.20.13/24", "192.168.10.11/24", "192.168.10.12/24")
    ]
    (message,) = _apart(_cluster(addresses))
    assert message.startswith(
        "node `n0` (192.168.20.13/24) is not on the underlay subnet 192.168.10.0/24 of `n1`, `n2`"
    )


def test_a_prefix_too_narrow_for_the_others_is_reported_on_its_node():
    addresses = [
        ipaddress.ip_interface(a)
        for a in ("192.168.10.11/24", "192.168.10.12/24", "192.168.10.20/28")
    ]
    (message,) = _apart(_cluster(addresses))
    assert message.startswith("the underlay prefix of node `n2` (192.168.10.20/28) leaves out")
