"""Drift that netc repairs: what an admin or a firewall reload takes away behind its back.

`netc apply --node` (what the agent runs every minute) and a pod's ADD look
at the kernel, not at what they remember doing: after `iptables -t nat -F`
the next apply or ADD puts the network's NAT back, and pods reach the outside
world again.  One vxlan cluster of two nodes, single stack.
"""

from __future__ import annotations

import json

import pytest

from tests.cluster.sim import CLIENT, NODE_A, NODE_B, SimCluster, sh

CLIENT_PORT = 9000


@pytest.fixture
def cluster(tmp_path, bin_dir):
    with SimCluster(tmp_path, bin_dir, "vxlan", False, (NODE_A, NODE_B)) as sim:
        sim.apply_all()
        sim.serve(sim.client, "tcp", CLIENT_PORT, "client")
        sim.add_pod(NODE_A)
        yield sim


def _egress(cluster: SimCluster) -> str | None:
    """What the client sees of node-a's pod: masqueraded to node-a's address, or nothing."""
    return cluster.ask(cluster.pods[NODE_A.name].pod.name, "tcp", CLIENT, CLIENT_PORT)


def _flush_nat(cluster: SimCluster) -> None:
    sh("ip", "netns", "exec", cluster.ns(NODE_A), "iptables", "-t", "nat", "-F")
    assert _egress(cluster) is None, "the pod's traffic left unmasqueraded, or came back"


def test_apply_puts_a_flushed_nat_table_back_and_says_so(cluster):
    assert _egress(cluster) == f"client {NODE_A.address}"
    _flush_nat(cluster)
    assert cluster.plan_live(NODE_A).returncode == 2
    repair = cluster.apply(NODE_A)
    assert repair.returncode == 2, repair.stderr
    (line,) = repair.stdout.splitlines()
    assert line.startswith("+ NAT of network pods (IPv4): ") and "(repaired: no jump from " \
        "POSTROUTING to NETC-PO-" in line, repair.stdout
    assert _egress(cluster) == f"client {NODE_A.address}"
    assert cluster.plan_live(NODE_A).returncode == 0
    assert cluster.apply(NODE_A).returncode == 0


def test_the_next_pods_add_puts_a_flushed_nat_table_back(cluster):
    _flush_nat(cluster)
    cluster.add_pod(NODE_A, "second", host_port=8081)
    assert _egress(cluster) == f"client {NODE_A.address}"
    assert cluster.plan_live(NODE_A).returncode == 0, cluster.pending(cluster.plan_live(NODE_A))


def test_apply_repairs_a_bridge_mtu_and_says_what_it_was(cluster):
    sh("ip", "-n", cluster.ns(NODE_A), "link", "set", "cni0", "mtu", "1400")
    repair = cluster.apply(NODE_A)
    assert repair.returncode == 2
    assert repair.stdout.splitlines() == [
        f"+ bridge cni0 mtu {cluster.pod_mtu} (repaired: mtu 1400, want {cluster.pod_mtu})"]
    (bridge,) = json.loads(sh("ip", "-j", "-n", cluster.ns(NODE_A), "link", "show",
                              "cni0").stdout)
    assert bridge["mtu"] == cluster.pod_mtu
