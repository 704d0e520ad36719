"""`netc uninstall` leaves a node as it was before netc, and netc can come back.

A vxlan cluster of two nodes; node-a gets what the agent gives a node --
its conflist, the shim and its cold file, the warm server's socket (left by
a server that died) -- then `netc apply` and a pod with a host port (a
record, an address, a claim, its DNAT chain).  After `netc uninstall
--force --apply` its kernel state (links, addresses, routes, the nat and raw
tables) is a fresh node's, and nothing netc wrote is left in its
directories but what it must not touch; a new apply and a new pod work.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from compiler.cluster import networks_for_node
from runtime.agent import install_plugin, plugin_files, write_conflists
from tests.cluster.sim import NODE_A, NODE_B, SimCluster

FOREIGN = "99-other.conflist"


@pytest.fixture
def cluster(tmp_path, bin_dir):
    with SimCluster(tmp_path / "sim", bin_dir, "vxlan", False, (NODE_A, NODE_B)) as sim:
        yield sim


def _tables(sim: SimCluster) -> dict[str, object]:
    state = sim.kernel_state(sim.ns(NODE_A))
    state["raw"] = sorted(
        line
        for line in sim.run(sim.ns(NODE_A), "iptables-save", "-t", "raw").stdout.splitlines()
        if not line.startswith(("#", ":"))
    )
    return state


def _node_like_the_agents(sim: SimCluster, root: Path) -> dict[str, Path]:
    """node-a's conf and bin dirs and socket as the agent leaves them; a foreign conflist."""
    where = {
        "conf": root / "net.d",
        "bin": root / "bin",
        "socket": root / "run" / "cni.sock",
        "memory": root / "memory",
    }
    compiled = sim.compiled(NODE_A)
    write_conflists(
        str(where["conf"]), networks_for_node(compiled.networks, compiled.clusters, NODE_A.name)
    )
    (where["conf"] / FOREIGN).write_text("{}\n")
    for name, content in plugin_files(str(where["bin"]), str(where["socket"])):
        install_plugin(str(where["bin"]), content, name)
    where["socket"].parent.mkdir()
    with socket.socket(socket.AF_UNIX) as dead:  # a server that died left its socket
        dead.bind(str(where["socket"]))
    return where


def _uninstall(sim: SimCluster, where: dict[str, Path], *flags: str) -> subprocess.CompletedProcess:
    return sim.netc(
        "uninstall",
        str(sim.source_file(NODE_A)),
        "--node",
        NODE_A.name,
        "--node-netns",
        sim.ns(NODE_A),
        "--cni-conf-dir",
        str(where["conf"]),
        "--cni-bin-dir",
        str(where["bin"]),
        "--socket",
        str(where["socket"]),
        "--memory-dir",
        str(where["memory"]),
        *flags,
    )


def test_uninstall_leaves_a_fresh_node_and_a_redeploy_works(cluster, tmp_path):
    fresh = _tables(cluster)
    where = _node_like_the_agents(cluster, tmp_path / "node-a")
    cluster.apply_all()
    cluster.add_pod(NODE_A)
    with_netc = _tables(cluster)
    files = cluster.tmp / NODE_A.name  # the node's state and IPAM directories
    (files / "state" / "iptables.lock").write_bytes(b"")  # an earlier netc's teardown turn

    refused = _uninstall(cluster, where, "--apply")
    assert refused.returncode == 1
    assert (
        "nothing removed: 1 pod attachment of network pods still on the node" in refused.stderr
        and "give --force to run their DEL" in refused.stderr
    )
    with socket.socket(socket.AF_UNIX) as server:  # an agent at work
        where["socket"].unlink()
        server.bind(str(where["socket"]))
        server.listen()
        running = _uninstall(cluster, where, "--force", "--apply")
    assert running.returncode == 1 and "a warm server answers on" in running.stderr

    dry = _uninstall(cluster, where, "--force")
    assert dry.returncode == 0, dry.stderr
    assert _tables(cluster) == with_netc, "a dry run changed the node"
    said = dry.stdout.splitlines()
    for expected in (
        f"would remove pod {cluster.pods[NODE_A.name].pod.container_id}/eth0",
        f"would remove conflist {where['conf']}/10-pods.conflist",
        f"would remove plugin {where['bin']}/netc-cni",
        f"would remove plugin {where['bin']}/.netc-cni-cold",
        f"would remove socket {where['socket']}",
        f"would remove an earlier netc's teardown lock: 1 file in {files / 'state'}",
        "would remove IPv4 nat chains NETC-PO-",
        "would remove IPv4 raw chains",
        "would remove bridge cni0",
        "would remove netc's link netc.1",
        "stays: net.ipv4.ip_forward",
    ):
        assert any(line.startswith(expected) for line in said), (expected, dry.stdout)

    done = _uninstall(cluster, where, "--force", "--apply")
    assert done.returncode == 0, done.stderr
    assert _tables(cluster) == fresh
    assert sorted(p.name for p in where["conf"].iterdir()) == [FOREIGN]
    assert list(where["bin"].iterdir()) == [] and not where["socket"].parent.exists()
    left = sorted(p.name for p in files.iterdir())  # the test's own files, not netc's
    assert left == ["cache", "cluster.netdsl", "pods.conflist"], "state or IPAM left"
    again = _uninstall(cluster, where, "--apply")  # nothing left to remove
    assert again.returncode == 0 and "removed" not in again.stdout, again.stdout

    assert cluster.apply(NODE_A).returncode == 2, "the redeploy skipped something"
    assert cluster.plan_live(NODE_A).returncode == 0
    pod = cluster.add_pod(NODE_A, "after")
    assert cluster.ping(pod.pod.name, str(next(NODE_A.subnet(4).hosts())))  # its gateway

    def shared(state: dict[str, object]) -> list[str]:  # without the pods' own DNAT
        return [line for line in state["nat"] if "NETC-DN-" not in line]

    assert shared(_tables(cluster)) == shared(with_netc)
