"""Drift that netc repairs: what an admin or a firewall reload takes away behind its back.

`netc apply --node` (what the agent runs every minute) and a pod's ADD look
at the kernel, not at what they remember doing: after `iptables -t nat -F`
the next apply or ADD puts the network's NAT back, and pods reach the outside
world again.  One vxlan cluster of two nodes, single stack.
"""

from __future__ import annotations

import json

import pytest

from compiler import kubernetes
from runtime.agent import Agent, Options
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
    assert (
        line.startswith("+ NAT of network pods (IPv4): ")
        and "(repaired: no jump from POSTROUTING to NETC-PO-" in line
    ), repair.stdout
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
        f"+ bridge cni0 mtu {cluster.pod_mtu} (repaired: mtu 1400, want {cluster.pod_mtu})"
    ]
    (bridge,) = json.loads(sh("ip", "-j", "-n", cluster.ns(NODE_A), "link", "show", "cni0").stdout)
    assert bridge["mtu"] == cluster.pod_mtu


def _without_underlay(sim: SimCluster) -> None:
    """Take node-a's underlay address away: host-gw routes to its peers then have no gateway
    on a link, which the kernel refuses -- a failure no check before the apply foresees."""
    sh("ip", "-n", sim.ns(NODE_A), "addr", "del", f"{NODE_A.address}/24", "dev", "eth0")


def _underlay_back(sim: SimCluster) -> None:
    sh("ip", "-n", sim.ns(NODE_A), "addr", "add", f"{NODE_A.address}/24", "dev", "eth0")


def test_an_apply_that_fails_partway_has_printed_every_change_it_made(tmp_path, bin_dir):
    """A route the kernel refuses stops the apply after the node's own setup: what was made
    is printed as it was made and stays, and the next apply carries on."""
    with SimCluster(tmp_path, bin_dir, "host-gw", False, (NODE_A, NODE_B)) as sim:
        _without_underlay(sim)
        failed = sim.apply(NODE_A)
        assert failed.returncode == 1
        made = failed.stdout.splitlines()
        assert made and all(line.startswith("+ ") for line in made), failed.stderr
        assert any(line.startswith("+ NAT of network pods") for line in made)
        assert f"the {len(made)} changes above stay" in failed.stderr
        assert (
            f"route to node-b's pods 10.244.2.0/24 via {NODE_B.address} (direct)" in failed.stderr
        )
        _underlay_back(sim)
        again = sim.apply(NODE_A)
        assert again.returncode == 2, again.stderr
        assert not set(again.stdout.splitlines()) & set(made), again.stdout
        assert sim.plan_live(NODE_A).returncode == 0


def test_the_agent_logs_each_change_as_it_makes_it_then_the_failure(tmp_path, bin_dir, capfd):
    with SimCluster(tmp_path, bin_dir, "host-gw", False, (NODE_A, NODE_B)) as sim:
        _without_underlay(sim)
        compilation = sim.compiled(NODE_A)
        config = tmp_path / "netc.json"
        config.write_text(kubernetes.render_config(compilation.clusters, compilation.networks))
        agent = Agent(
            Options(
                str(config),
                NODE_A.name,
                str(tmp_path / "net.d"),
                str(tmp_path / "bin"),
                str(tmp_path / "cni.sock"),
                health_port=None,
                node_netns=sim.ns(NODE_A),
            )
        )
        agent.converge()
        assert not agent.ready and "route to node-b's pods" in agent.problem, agent.problem
        logged = capfd.readouterr().err.splitlines()
        applied = [line for line in logged if line.startswith("netc agent: applied + ")]
        assert any("NAT of network pods" in line for line in applied), logged
        assert logged.index(applied[-1]) < next(
            i for i, line in enumerate(logged) if line.startswith("netc agent: not ready: ")
        )
        assert not (tmp_path / "net.d").exists(), "a conflist was written by a failed converge"
