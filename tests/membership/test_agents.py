"""Nodes that join and leave by themselves: agents on simulated nodes, a real 3-member etcd.

No node is written in the cluster's source.  Each node's agent claims a
block, and every agent routes to the others as they come and go: pods reach
each other across nodes without NAT, a node joining during a running flow
appears on every peer, one leaving (or crashing) disappears, an agent
restarted or a node rebooted keeps its block, an etcd without quorum for
longer than the lease removes nothing, a full pod CIDR keeps a new node out.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.cluster.sim import NODE_A, NODE_B, NODE_C, NODE_E, POD_PORT
from tests.membership.agents import LEASE, AgentCluster, assert_pods_reach_each_other, until

THREE = (NODE_A, NODE_B, NODE_C)


def _join(cluster: AgentCluster, *nodes) -> None:
    for node in nodes:
        cluster.start_agent(node)
    for node in nodes:
        assert cluster.wait_ready(node.name), cluster.log(node.name)


def _subnets(cluster: AgentCluster, *names: str) -> set[str]:
    return {f"10.244.{cluster.block(n)}.0/24" for n in names}


def _everyone_routes_to_everyone(cluster: AgentCluster, names: list[str]) -> bool:
    return all(
        cluster.peer_routes(cluster.nodes[n]) == _subnets(cluster, *(o for o in names if o != n))
        for n in names
    )


@pytest.mark.parametrize("mode", ["vxlan", "host-gw"])
def test_three_nodes_join_with_no_node_statement_and_pods_talk_without_nat(tmp_path, bin_dir, mode):
    with AgentCluster(tmp_path, bin_dir, mode) as cluster:
        _join(cluster, *THREE)
        names = [n.name for n in THREE]
        blocks = [cluster.block(n) for n in names]
        assert len(set(blocks)) == 3 and None not in blocks, blocks
        assert until(lambda: _everyone_routes_to_everyone(cluster, names))
        planned = cluster.plan_live_members(NODE_A)
        assert planned.returncode == 0, planned.stderr
        for peer in (NODE_B, NODE_C):
            block = cluster.block(peer.name)
            assert f"route to {peer.name}'s pods 10.244.{block}.0/24 via" in planned.stdout
        pods = [cluster.add_pod(n) for n in THREE]
        assert [p.addresses[4].rsplit(".", 1)[0] for p in pods] == [f"10.244.{b}" for b in blocks]
        assert_pods_reach_each_other(cluster, pods)


def test_a_node_joins_during_a_flow_leaves_gracefully_and_one_that_crashes_goes_with_its_lease(
    tmp_path, bin_dir
):
    with AgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, NODE_A, NODE_B)
        a, b = cluster.add_pod(NODE_A), cluster.add_pod(NODE_B)
        running = cluster.flow(a, b)
        _join(cluster, NODE_C)
        everyone = [NODE_A.name, NODE_B.name, NODE_C.name]
        assert until(lambda: _everyone_routes_to_everyone(cluster, everyone))
        c = cluster.add_pod(NODE_C)
        assert (
            cluster.ask(a.pod.name, "tcp", c.addresses[4], POD_PORT) == f"node-c {a.addresses[4]}"
        )
        sent, answered, _ = cluster.flow_result(running)
        assert sent > 0 and answered == sent, "the join cost the running flow datagrams"

        left = _subnets(cluster, NODE_C.name)
        assert cluster.stop_agent(NODE_C.name) == 0
        done = cluster.leave(NODE_C)
        assert done.returncode == 0 and "left cluster sim" in done.stdout, done.stderr
        assert until(
            lambda: not any(left & cluster.peer_routes(n) for n in (NODE_A, NODE_B)), LEASE / 2
        )

        _join(cluster, NODE_E)
        gone = _subnets(cluster, NODE_E.name)
        assert until(lambda: all(gone <= cluster.peer_routes(n) for n in (NODE_A, NODE_B)))
        cluster.stop_agent(NODE_E.name, signal.SIGKILL)
        assert all(gone <= cluster.peer_routes(n) for n in (NODE_A, NODE_B)), (
            "a crashed node lost its routes before its lease ran out"
        )
        assert until(
            lambda: not any(gone & cluster.peer_routes(n) for n in (NODE_A, NODE_B)), 3 * LEASE + 10
        )


def test_an_agent_restart_and_a_reboot_keep_the_block_and_the_pods_addresses(tmp_path, bin_dir):
    with AgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, NODE_A, NODE_B)
        block, pod = cluster.block(NODE_A.name), cluster.add_pod(NODE_A)
        assert cluster.stop_agent(NODE_A.name) == 0  # a rolling upgrade: SIGTERM, back at once
        _join(cluster, NODE_A)
        assert cluster.wait_ready(NODE_A.name, 2)
        assert cluster.block(NODE_A.name) == block
        peer = cluster.add_pod(NODE_B)
        assert (
            cluster.ask(peer.pod.name, "tcp", pod.addresses[4], POD_PORT)
            == f"node-a {peer.addresses[4]}"
        )
        cluster.stop_agent(NODE_A.name, signal.SIGKILL)  # a reboot: down longer than the lease
        assert until(lambda: not cluster.peer_routes(NODE_B), 3 * LEASE + 10)
        _join(cluster, NODE_A)
        assert cluster.block(NODE_A.name) == block, "a rebooted node came back renumbered"
        assert until(lambda: _everyone_routes_to_everyone(cluster, [NODE_A.name, NODE_B.name]))
        assert (
            cluster.ask(peer.pod.name, "tcp", pod.addresses[4], POD_PORT)
            == f"node-a {peer.addresses[4]}"
        )


def test_etcd_without_quorum_longer_than_the_lease_costs_a_flow_nothing(tmp_path, bin_dir):
    with AgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, NODE_A, NODE_B)
        blocks = {n: cluster.block(n) for n in (NODE_A.name, NODE_B.name)}
        a, b = cluster.add_pod(NODE_A), cluster.add_pod(NODE_B)
        routes = {n.name: cluster.peer_routes(n) for n in (NODE_A, NODE_B)}
        healthy = cluster.status(NODE_A)
        assert healthy.returncode == 0, healthy.stdout
        assert healthy.stdout.startswith(
            f"cluster sim (etcd membership): node node-a holds block {blocks['node-a']} (lease "
        ), healthy.stdout
        running = cluster.flow(a, b)
        cluster.etcd.stop(0)
        cluster.etcd.stop(1)
        assert until(lambda: "etcd is unavailable" in cluster.log(NODE_A.name), 3 * LEASE + 10)
        assert until(lambda: "! etcd is unavailable" in cluster.status(NODE_A).stdout, 10)
        assert cluster.status(NODE_A).returncode == 1
        time.sleep(3 * LEASE)  # the outage outlasts every lease
        assert {n.name: cluster.peer_routes(n) for n in (NODE_A, NODE_B)} == routes
        cluster.etcd.start(0)
        cluster.etcd.start(1)
        cluster.etcd.wait_healthy()
        assert until(lambda: "etcd answers again" in cluster.log(NODE_A.name), 30)
        time.sleep(2 * LEASE)  # a lease after etcd came back: nobody lapsed
        sent, answered, _ = cluster.flow_result(running)
        assert sent > 0 and answered == sent, f"{sent - answered} of {sent} datagrams lost"
        assert {n: cluster.block(n) for n in blocks} == blocks
        assert {n.name: cluster.peer_routes(n) for n in (NODE_A, NODE_B)} == routes


def test_a_node_for_which_the_pod_cidr_has_no_block_writes_no_conflist_and_says_why(
    tmp_path, bin_dir
):
    with AgentCluster(tmp_path, bin_dir, "vxlan", pod_cidr="10.244.0.0/23") as cluster:
        _join(cluster, NODE_A, NODE_B)
        cluster.start_agent(NODE_C)
        # The membership's own line says "no free block" before the agent's converge does.
        said = (
            "not ready: not joined cluster sim yet: no free block: the 2 blocks of pod "
            "CIDR 10.244.0.0/23 are all held"
        )
        assert until(lambda: said in cluster.log(NODE_C.name), 30), cluster.log(NODE_C.name)
        assert not cluster.conflist_path(NODE_C).exists()
        assert "netc agent: ready" not in cluster.log(NODE_C.name)


def test_an_agent_starting_removes_the_routes_of_a_node_that_left_while_it_was_down(
    tmp_path, bin_dir
):
    """flannel#2554: a peer deleted while the agent was down must not keep its route."""
    with AgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        _join(cluster, NODE_A, NODE_B, NODE_C)
        gone = _subnets(cluster, NODE_C.name)
        assert until(lambda: gone <= cluster.peer_routes(NODE_A))
        assert cluster.stop_agent(NODE_A.name) == 0
        assert cluster.stop_agent(NODE_C.name) == 0
        assert cluster.leave(NODE_C).returncode == 0
        assert until(lambda: not gone & cluster.peer_routes(NODE_B), LEASE)
        assert gone <= cluster.peer_routes(NODE_A), "nothing removed while its agent was down"
        _join(cluster, NODE_A)
        assert cluster.wait_ready(NODE_A.name, 2)
        assert not gone & cluster.peer_routes(NODE_A)
        assert cluster.mac(NODE_C) not in {e.get("mac") for e in cluster.fdb(NODE_A)}


def _masquerade(cluster: AgentCluster, node) -> tuple[str, str]:
    """The node's masquerade chain of network pods, and its rules as `iptables -S` lists them."""
    chains = cluster.run(cluster.ns(node), "iptables", "-t", "nat", "-S").stdout
    (chain,) = [line.split()[1] for line in chains.splitlines() if line.startswith("-N NETC-PO-")]
    return chain, cluster.run(cluster.ns(node), "iptables", "-t", "nat", "-S", chain).stdout


def test_a_converge_for_a_new_peer_trusts_the_nat_and_a_thorough_one_checks_every_rule(
    tmp_path, bin_dir
):
    """A joining peer makes every node converge at once: that converge trusts the NAT's
    shape as a pod's ADD does; the next thorough one (here: for a new configuration)
    finds a rule edited by hand and puts it back."""
    with AgentCluster(tmp_path, bin_dir, "vxlan") as cluster:
        cluster.start_agent(NODE_A, "--interval", "600")
        assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
        chain, planned = _masquerade(cluster, NODE_A)
        edited = ("-R", chain, "1", "-s", "192.0.2.0/24", "-j", "RETURN")
        cluster.run(cluster.ns(NODE_A), "iptables", "-t", "nat", *edited)
        _join(cluster, NODE_B)
        assert until(lambda: _subnets(cluster, NODE_B.name) <= cluster.peer_routes(NODE_A))
        assert "192.0.2.0/24" in _masquerade(cluster, NODE_A)[1], "the quick converge left it"
        config = cluster.dirs(NODE_A)["config"]
        config.write_text(config.read_text() + "\n")  # a new configuration: thorough
        assert until(lambda: _masquerade(cluster, NODE_A)[1] == planned), cluster.log(NODE_A.name)
        # The converge says what it repaired once it has ended: after the rule is back.
        assert until(lambda: "repaired" in cluster.log(NODE_A.name)), cluster.log(NODE_A.name)
