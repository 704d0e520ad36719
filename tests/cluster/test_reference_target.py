"""A cluster's nodes on the stock plugins keep pod-to-pod traffic un-NATed.

`netc build --target reference --node NAME` gives each node a conflist of
the stock bridge plugin, and `netc apply --node NAME` the routes to the
other nodes and the masquerade of traffic leaving the pod CIDRs.  The
bridge plugin's own `ipMasq` masquerades everything that leaves the node's
subnet -- other nodes' pods too -- so it must not be in the conflist: a pod
on node-b must see the address of the pod on node-a that called it.
"""

from __future__ import annotations

import json

import pytest

from tests.cluster.sim import CLIENT, NODE_A, NODE_B, POD_PORT, SimCluster

CLIENT_PORT = 9000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, bin_dir):
    with SimCluster(
        tmp_path_factory.mktemp("reference"),
        bin_dir,
        "host-gw",
        False,
        (NODE_A, NODE_B),
        target="reference",
    ) as sim:
        sim.apply_all()
        sim.add_pods([NODE_A, NODE_B])
        sim.serve(sim.client, "tcp", CLIENT_PORT, "client")
        yield sim


def test_the_pods_are_attached_by_the_stock_bridge_plugin(cluster):
    (bridge, *_) = json.loads(cluster.conflist(NODE_A))["plugins"]
    assert bridge["type"] == "bridge" and "ipMasq" not in bridge


def test_a_pod_on_another_node_sees_the_calling_pods_own_address(cluster):
    pairs = [(NODE_A, NODE_B), (NODE_B, NODE_A)]
    answers = cluster.ask_all(
        [
            (cluster.pods[s.name].pod.name, cluster.pods[t.name].addresses[4], POD_PORT)
            for s, t in pairs
        ]
    )
    assert answers == [f"{t.name} {cluster.pods[s.name].addresses[4]}" for s, t in pairs]


def test_a_pod_reaches_the_outside_world_masqueraded_to_its_nodes_address(cluster):
    answers = cluster.ask_all(
        [(cluster.pods[n.name].pod.name, CLIENT, CLIENT_PORT) for n in (NODE_A, NODE_B)]
    )
    assert answers == [f"client {n.address}" for n in (NODE_A, NODE_B)]
