"""Nodes whose members are Kubernetes' Nodes: agents on simulated nodes, the tests' API server
(tests/membership/apiserver.py, not a real kube-apiserver) on the underlay, pods attached
through the conflist and plugin each agent wrote.

No node is written in the cluster's source.  Each node's Node carries its podCIDR: the agents
route to each other as Nodes come and go -- pods reach each other across nodes without NAT, a
node added during a running flow costs it nothing, a Node deleted loses its routes everywhere,
an agent restarted keeps its subnet and removes the routes of a Node deleted meanwhile, an API
away removes nothing, and a Node without a fitting podCIDR gets no conflist and says why.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.sim import NODE_A, NODE_B, NODE_C, NODE_E, POD_PORT
from tests.membership.agents import assert_pods_reach_each_other, until
from tests.membership.kube_agents import KubeAgentCluster

THREE = (NODE_A, NODE_B, NODE_C)


def _join(cluster: KubeAgentCluster, *nodes) -> None:
    for node in nodes:
        if node.name not in cluster.api.store.nodes:
            cluster.register(node)
        cluster.start_agent(node)
    for node in nodes:
        assert cluster.wait_ready(node.name), cluster.log(node.name)


def _everyone_routes_to_everyone(cluster: KubeAgentCluster, nodes) -> bool:
    return all(
        cluster.peer_routes(n) == {cluster.subnet(o) for o in nodes if o is not n} for n in nodes
    )


@pytest.mark.parametrize("mode", ["vxlan", "host-gw"])
def test_three_nodes_join_from_their_nodes_and_pods_talk_without_nat(tmp_path, bin_dir, mode):
    with KubeAgentCluster(tmp_path, bin_dir, mode) as cluster:
        _join(cluster, *THREE)
        assert until(lambda: _everyone_routes_to_everyone(cluster, THREE))
        annotations = cluster.api.node("node-b")["metadata"]["annotations"]
        assert annotations == {"netc.dev/underlay-addresses": "198.18.10.12/24"}
        pods = [cluster.add_pod(n) for n in THREE]
        assert [p.addresses[4].rsplit(".", 1)[0] for p in pods] == [
            f"10.244.{n.block}" for n in THREE
        ]
        assert_pods_reach_each_other(cluster, pods)


def test_a_fourth_node_joins_during_a_flow_and_a_deleted_node_vanishes_everywhere(
    tmp_path, bin_dir
):
    with KubeAgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, *THREE)
        a, b = cluster.add_pod(NODE_A), cluster.add_pod(NODE_B)

        def fourth_joins() -> None:
            _join(cluster, NODE_E)
            assert until(lambda: _everyone_routes_to_everyone(cluster, (*THREE, NODE_E)))
            e = cluster.add_pod(NODE_E)
            assert (
                cluster.ask(a.pod.name, "tcp", e.addresses[4], POD_PORT)
                == f"node-e {a.addresses[4]}"
            )

        cluster.lossless(a, b, fourth_joins)

        cluster.stop_agent(NODE_C.name)
        cluster.api.delete_node(NODE_C.name)  # kubectl delete node node-c
        rest = (NODE_A, NODE_B, NODE_E)
        assert until(lambda: _everyone_routes_to_everyone(cluster, rest), 10)
        assert all(cluster.mac(NODE_C) not in {f.get("mac") for f in cluster.fdb(n)} for n in rest)


def test_a_restarted_agent_keeps_its_subnet_and_drops_a_node_deleted_meanwhile(tmp_path, bin_dir):
    """flannel#2554: a peer deleted while the agent was down must not keep its route."""
    with KubeAgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, *THREE)
        assert until(lambda: _everyone_routes_to_everyone(cluster, THREE))
        pod = cluster.add_pod(NODE_A)
        assert cluster.stop_agent(NODE_A.name) == 0
        cluster.stop_agent(NODE_C.name)
        cluster.api.delete_node(NODE_C.name)
        assert until(lambda: cluster.subnet(NODE_C) not in cluster.peer_routes(NODE_B), 10)
        assert cluster.subnet(NODE_C) in cluster.peer_routes(NODE_A), "nothing while down"
        cluster.start_agent(NODE_A)
        assert cluster.wait_ready(NODE_A.name, 2), cluster.log(NODE_A.name)
        assert cluster.peer_routes(NODE_A) == {cluster.subnet(NODE_B)}
        assert cluster.members(NODE_A.name)["subnets"] == [cluster.subnet(NODE_A)]
        peer = cluster.add_pod(NODE_B)
        assert (
            cluster.ask(peer.pod.name, "tcp", pod.addresses[4], POD_PORT)
            == f"node-a {peer.addresses[4]}"
        )


API_OUTAGE = 60.0
"""Seconds the API server is away: long past the agents' longest retry wait."""


def test_the_api_away_for_a_minute_costs_a_flow_nothing_and_removes_nothing(tmp_path, bin_dir):
    with KubeAgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, NODE_A, NODE_B)
        a, b = cluster.add_pod(NODE_A), cluster.add_pod(NODE_B)
        routes = {n.name: cluster.peer_routes(n) for n in (NODE_A, NODE_B)}
        healthy = cluster.status(NODE_A)
        assert healthy.returncode == 0, healthy.stdout
        assert healthy.stdout.startswith(
            "cluster sim (kubernetes membership): node node-a has "
            "pod subnets 10.244.1.0/24, 2 members"
        ), healthy.stdout

        def outage() -> None:
            cluster.api.stop()
            assert until(lambda: "the Kubernetes API is unavailable" in cluster.log(NODE_A.name))
            assert until(
                lambda: "! the Kubernetes API is unavailable" in cluster.status(NODE_A).stdout, 10
            )
            assert cluster.status(NODE_A).returncode == 1
            away = time.monotonic() + API_OUTAGE  # the routes looked at all along
            while time.monotonic() < away:
                assert {n.name: cluster.peer_routes(n) for n in (NODE_A, NODE_B)} == routes
                time.sleep(5)
            cluster.api.start()
            assert until(lambda: "the Kubernetes API answers again" in cluster.log(NODE_A.name), 30)
            assert until(lambda: cluster.status(NODE_A).returncode == 0, 10)

        cluster.lossless(a, b, outage)
        assert {n.name: cluster.peer_routes(n) for n in (NODE_A, NODE_B)} == routes


def test_nodes_whose_podcidrs_do_not_fit_get_no_conflist_and_say_what_to_set(tmp_path, bin_dir):
    with KubeAgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, NODE_A)
        cluster.register(NODE_B, pod_cidr=None)
        cluster.register(NODE_C, pod_cidr="10.99.3.0/24")
        cluster.start_agent(NODE_B)
        cluster.start_agent(NODE_C)
        said = {
            NODE_B.name: "Node node-b: it has no podCIDR: kube-controller-manager assigns "
            "them when run with --allocate-node-cidrs --cluster-cidr=10.244.0.0/16 "
            "--node-cidr-mask-size=24 (kubeadm init --pod-network-cidr=10.244.0.0/16)",
            NODE_C.name: "Node node-c: its podCIDR 10.99.3.0/24 is outside the cluster's "
            "pod-cidr 10.244.0.0/16",
        }
        for node in (NODE_B, NODE_C):
            assert until(
                lambda n=node: (
                    f"not ready: not joined cluster sim yet: {said[n.name]}" in cluster.log(n.name)
                ),
                30,
            ), cluster.log(node.name)
            status = cluster.status(node)
            assert status.returncode == 1 and f"! {said[node.name]}" in status.stdout, status.stdout
            assert "node " + node.name + " is no member" in status.stdout
            assert not cluster.conflist_path(node).exists()
            assert "netc agent: ready" not in cluster.log(node.name)
        assert cluster.peer_routes(NODE_A) == set(), "no route to a Node that is no member"
