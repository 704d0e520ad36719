"""Issue 11, the proof: netc's agent image run through containerd's CRI as a DaemonSet pod.

Two simulated nodes (tests/rollout/nodes.py), each with its own containerd
1.6 and the agent pod of `netc build --target kubernetes` -- host network,
host PIDs, the manifest's capabilities, seccomp profile, environment and
mounts, the ConfigMap in the kubelet's layout.  Workload pods are started
through the same CRI, so containerd runs the plugin the agent installed,
as it would on a node.  The cluster is shared by the module; each test
leaves it as it found it (both agents ready, the first configuration, no
workload pod).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from compiler.planner.names import AttachmentNames
from runtime import driver
from runtime.agent import install_plugin
from runtime.artifact import plugin_artifact
from tests.cluster.sim import CLIENT, NODE_A, NODE_B, NODE_C, SimNode
from tests.rollout.nodes import AgentNode, RolloutCluster, pause_image
from tests.runtimes.conftest import require
from tests.runtimes.host import children, processes_naming
from tests.runtimes.network import page, tbf

pytestmark = [pytest.mark.runtimes, pytest.mark.root]

NETWORK = "pods"
BANDWIDTH = {"kubernetes.io/ingress-bandwidth": "8M", "kubernetes.io/egress-bandwidth": "4M"}
PROBE_PORT = 9100
PYTHON_3_10 = Path("/root/.pyenv/versions/3.10.13/bin/python")


@dataclass
class Scene:
    """The simulated cluster and its two agent nodes."""

    sim: RolloutCluster
    a: AgentNode
    b: AgentNode
    ready_after: dict[str, float]
    """Seconds from StartContainer to a 200 from /readyz, per node (first start)."""
    network_before: dict[str, bool]
    """Whether containerd said NetworkReady before the agent ran, per node."""


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, agent_image_archive: Path
          ) -> Iterator[Scene]:
    require("containerd")
    tmp = tmp_path_factory.mktemp("rollout")
    with RolloutCluster(tmp / "cluster", (NODE_A, NODE_B)) as sim:
        images = [agent_image_archive, pause_image(tmp, sim)]
        nodes: list[AgentNode] = []
        try:
            with ThreadPoolExecutor(2) as pool:
                nodes += pool.map(lambda n: AgentNode(sim, n, images), (NODE_A, NODE_B))
                before = {name: n.cri.network_ready() for name, n in zip("ab", nodes, strict=True)}
                ready = dict(zip("ab", pool.map(AgentNode.start_agent, nodes), strict=True))
            yield Scene(sim, *nodes, ready_after=ready, network_before=before)
        finally:
            for node in nodes:
                node.close()


# what the tests look at


def _http(scene: Scene, node: SimNode, port: int) -> str:
    """What the client outside the cluster gets from a node's host port."""
    done = scene.sim.run(scene.sim.client, "curl", "-sS", "--max-time", "5",
                         f"http://{node.address}:{port}/", check=False)
    return done.stdout if done.returncode == 0 else f"curl failed: {done.stderr.strip()}"


def _serves(scene: Scene, node: SimNode, port: int) -> bool:
    return scene.sim.wait_for(lambda: _http(scene, node, port) == page(scene.sim))


def _probe(scene: Scene, netns: str, tag: str) -> subprocess.Popen:
    """A netprobe responder inside a pod's namespace (stopped by `_unprobe`)."""
    return scene.sim.serve(netns, "tcp", PROBE_PORT, tag)


def _unprobe(scene: Scene, process: subprocess.Popen) -> None:
    process.kill()
    process.wait()
    scene.sim.processes.remove(process)


def _routes(node: AgentNode) -> dict[str, dict]:
    """netc's routes on a node (protocol 78), by destination."""
    return {r["dst"]: r for r in node.cluster.ip_json(node.node, "route", "show")
            if r.get("protocol") == "78"}


def _mtu(scene: Scene, netns: str, device: str) -> int:
    (link,) = json.loads(scene.sim.run(netns, "ip", "-j", "link", "show", device).stdout)
    return link["mtu"]


def _owned(node: AgentNode) -> set[str]:
    """The conflists netc's manifest in the conf dir says it owns."""
    return set(json.loads((node.conf_dir / ".netc-owned").read_text())["files"])


# the proof


def test_the_agent_sets_the_node_up_and_writes_the_conflist_last(scene):
    """The runtime reports no network until the agent's conflist is there, and that comes
    after the plugin, the node's plan and the warm server (kubernetes#48798, cilium#32168)."""
    a = scene.a
    assert scene.network_before == {"a": False, "b": False}
    assert a.cri.network_ready()
    assert a.readiness() == (200, "ok")
    assert set(a.conflists()) == {"10-pods.conflist"}
    said = [line.split()[2] for line in a.container_log(0).splitlines()
            if line.startswith("netc agent: ")]
    firsts = [said.index(word) for word in ("configuration", "installed", "applied", "warm",
                                            "wrote", "ready")]
    assert firsts == sorted(firsts), said


def test_a_cri_pod_gets_its_network_from_what_the_agent_installed(scene):
    a = scene.a
    installed = (a.bin_dir / "netc-cni").read_bytes()
    assert installed == plugin_artifact(str(a.socket)), "not the artifact for the agent's socket"
    served_before = a.log().count("call handed to process")
    pod = a.run_pod("web", 8080, BANDWIDTH)
    try:
        address = ipaddress.ip_address(a.pod_address(pod))
        assert address in NODE_A.subnet(4)
        assert _serves(scene, NODE_A, 8080), _http(scene, NODE_A, 8080)
        own = AttachmentNames(NETWORK, pod, "eth0")
        assert tbf(scene.sim, a.netns, own.host_veth)["rate"] * 8 == 8_000_000
        assert tbf(scene.sim, a.netns, own.ifb)["rate"] * 8 == 4_000_000
        assert a.log().count("call handed to process") > served_before, "the ADD was not warm"
    finally:
        a.remove_pod(pod)
    links = scene.sim.run(a.netns, "ip", "-o", "link").stdout
    assert own.host_veth not in links and own.ifb not in links


def test_pods_on_two_nodes_reach_each_other_without_nat(scene):
    a, b = scene.a, scene.b
    pods = {a: a.run_pod("left", 8081, {}), b: b.run_pod("right", 8081, {})}
    probes = []
    try:
        addresses = {node: node.pod_address(pod) for node, pod in pods.items()}
        assert ipaddress.ip_address(addresses[b]) in NODE_B.subnet(4)
        probes = [_probe(scene, node.pod_netns(pod), node.node.name)
                  for node, pod in pods.items()]
        # the receiver answers with the source it saw: the sender's pod address
        assert scene.sim.ask(a.pod_netns(pods[a]), "tcp", addresses[b], PROBE_PORT) == \
            f"{NODE_B.name} {addresses[a]}"
        assert scene.sim.ask(b.pod_netns(pods[b]), "tcp", addresses[a], PROBE_PORT) == \
            f"{NODE_A.name} {addresses[b]}"
        # and the outside world sees the node's address (masqueraded)
        scene.sim.serve(scene.sim.client, "tcp", PROBE_PORT, "client")
        assert scene.sim.ask(a.pod_netns(pods[a]), "tcp", CLIENT, PROBE_PORT) == \
            f"client {NODE_A.address}"
    finally:
        for process in probes:
            _unprobe(scene, process)
        for node, pod in pods.items():
            node.remove_pod(pod)


def _publish(scene: Scene, *, nodes: tuple[SimNode, ...], mtu: int, priority: int) -> None:
    """A new configuration for both nodes: the kubelets swap their ConfigMap volumes."""
    scene.sim.listed = list(nodes)
    scene.sim.mtu, scene.sim.priority = mtu, priority
    for node in (scene.a, scene.b):
        node.publish()


def _converged(node: AgentNode, old: str, new: str) -> bool:
    """Whether the agent logged the stale conflist's removal; the directory holds the new."""
    logged = node.wait_log_count(f"removed stale {node.conf_dir / old}", 1)
    return logged and set(node.conflists()) == {new} and _owned(node) == {new}


def test_a_new_configuration_is_applied_and_running_pods_keep_working(scene):
    a, b = scene.a, scene.b
    before = a.run_pod("old", 8082, {})
    peer = b.run_pod("peer", 8082, {})
    probe = _probe(scene, b.pod_netns(peer), "peer")
    peer_address, old_address = b.pod_address(peer), a.pod_address(before)
    read = a.log().count("netc agent: configuration ")
    try:
        _publish(scene, nodes=(NODE_A, NODE_B, NODE_C), mtu=1400, priority=20)
        for node in (a, b):  # a node added, the MTU changed, a new file name: no stale conflist
            assert _converged(node, "10-pods.conflist", "20-pods.conflist"), node.log()
            route = _routes(node)[str(NODE_C.subnet(4))]
            assert route["gateway"] == NODE_C.address
        assert a.log().count("netc agent: configuration ") == read + 1  # the new one, once
        assert f"applied + route to node-c's pods {NODE_C.subnet(4)}" in a.log()
        assert _mtu(scene, a.netns, "cni0") == 1400
        # the running pods keep working, and the new MTU reaches new pods
        assert scene.sim.ask(a.pod_netns(before), "tcp", peer_address, PROBE_PORT) == \
            f"peer {old_address}"
        assert _serves(scene, NODE_A, 8082)
        after = a.run_pod("new", 8083, {})
        assert _mtu(scene, a.pod_netns(after), "eth0") == 1400
        assert scene.sim.ask(a.pod_netns(after), "tcp", peer_address, PROBE_PORT) == \
            f"peer {a.pod_address(after)}"
        a.remove_pod(after)
    finally:
        _unprobe(scene, probe)
        a.remove_pod(before)
        b.remove_pod(peer)
        _publish(scene, nodes=(NODE_A, NODE_B), mtu=1500, priority=10)
        for node in (a, b):
            assert _converged(node, "20-pods.conflist", "10-pods.conflist"), node.log()
            assert scene.sim.wait_for(lambda n=node: str(NODE_C.subnet(4)) not in _routes(n))


def _direct_call(node: AgentNode, plugin: Path, command: str, container: str,
                 netns: str) -> subprocess.CompletedProcess:
    """`plugin` run in the node as a runtime runs the installed one, for its network."""
    (conflist,) = node.conflists().values()
    config = {**conflist["plugins"][0], "name": conflist["name"],
              "cniVersion": conflist["cniVersion"]}
    environment = {"CNI_COMMAND": command, "CNI_CONTAINERID": container,
                   "CNI_NETNS": f"/run/netns/{netns}", "CNI_IFNAME": "eth0",
                   "CNI_PATH": str(node.bin_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["ip", "netns", "exec", node.netns, str(plugin)],
                          input=json.dumps(config), env=environment, capture_output=True,
                          text=True, check=False, timeout=60)


def _cold_add_on_python_3_10(scene: Scene, node: AgentNode) -> None:
    """One cold ADD and DEL through the artifact on the oldest Python it supports."""
    if not PYTHON_3_10.exists():
        return
    netns = scene.sim.netns("py310")
    container = f"{scene.sim.tag}-py310"
    plugin = node.bin_dir.parent / "netc-cni-py310"  # the agent's, finding only Python 3.10
    plugin.write_bytes(plugin_artifact(str(node.socket), interpreters=(str(PYTHON_3_10),)))
    plugin.chmod(0o755)
    added = _direct_call(node, plugin, "ADD", container, netns)
    assert added.returncode == 0, added.stdout + added.stderr
    (ip,) = json.loads(added.stdout)["ips"]
    assert ipaddress.ip_interface(ip["address"]) in NODE_A.subnet(4)
    deleted = _direct_call(node, plugin, "DEL", container, netns)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    scene.sim.remove_netns(netns)


def test_with_the_agent_stopped_pods_attach_cold_and_it_takes_over_unchanged(scene):
    a = scene.a
    old = a.run_pod("before", 8084, {})
    conflists, plugin = a.conflists(), (a.bin_dir / "netc-cni").read_bytes()
    assert a.stop_agent() == 0, a.container_log(a.starts - 1)
    assert (f"the plugin {a.bin_dir / 'netc-cni'} and 1 conflist of netc's in {a.conf_dir} "
            "stay") in a.log()
    assert a.readiness()[0] == 0, "the agent still answers"
    assert (a.conflists(), (a.bin_dir / "netc-cni").read_bytes()) == (conflists, plugin)
    during = a.run_pod("during", 8085, {})  # no server: the artifact runs the plugin itself
    try:
        assert ipaddress.ip_address(a.pod_address(during)) in NODE_A.subnet(4)
        assert _serves(scene, NODE_A, 8085)
        own = AttachmentNames(NETWORK, old, "eth0")
        a.remove_pod(old)
        assert own.host_veth not in scene.sim.run(a.netns, "ip", "-o", "link").stdout
        _cold_add_on_python_3_10(scene, a)
        state = scene.sim.kernel_state(a.netns)
        starts = a.starts
        a.start_agent()
        assert scene.sim.kernel_state(a.netns) == state, "the agent changed the node"
        said = [line.split()[2] for line in a.container_log(starts).splitlines()
                if line.startswith("netc agent: ")]
        assert said == ["configuration", "warm", "ready"], a.container_log(starts)
        assert _serves(scene, NODE_A, 8085)
    finally:
        a.remove_pod(during)


def test_a_warm_server_that_dies_is_started_again(scene):
    b = scene.b
    serving = {pid for pid, command in processes_naming(str(b.socket)).items()
               if "serve-cni" in command}  # the agent's server and its spare child
    (server,) = serving - {child for pid in serving for child in children(pid)}
    listening = b.log().count("warm server listening")
    os.kill(server, signal.SIGKILL)
    assert b.wait_log_count("warm server ended (status -9); starting it again", 1), b.log()
    assert b.wait_log_count("warm server listening", listening + 1), b.log()
    served = b.log().count("call handed to process")
    pod = b.run_pod("again", 8086, {})
    try:
        assert b.log().count("call handed to process") > served, "the ADD was not warm"
    finally:
        b.remove_pod(pod)


def _add_and_delete(node: AgentNode, worker: int, rounds: int, failures: list[str]) -> None:
    """ADD then DEL of one pod namespace after another, through the installed plugin."""
    sim = node.cluster
    conflist = driver.Conflist((node.conf_dir / "10-pods.conflist").read_bytes())
    for round_ in range(rounds):
        netns = sim.netns(f"w{worker}r{round_}")
        who = driver.Invocation(f"{sim.tag}-w{worker}-{round_}", f"/run/netns/{netns}",
                                cni_path=(str(node.bin_dir),), cache_dir=str(node.root / "cache"),
                                node_netns=node.netns)
        try:
            driver.add(conflist, who)
            driver.delete(conflist, who)
        except driver.PluginFailed as error:
            failures.append(str(error))
        sim.remove_netns(netns)


def test_the_plugin_replaced_while_adds_run_fails_no_add(scene):
    """Someone installs another plugin (an older agent's, a cold-only one) by rename while
    two runtimes' ADDs run; the agent's drift repair puts its own back: every ADD succeeds."""
    a = scene.a
    mine = a.bin_dir / "netc-cni"
    other = plugin_artifact(None)
    repaired = a.log().count("installed ")
    failures: list[str] = []
    workers = [threading.Thread(target=_add_and_delete, args=(a, n, 12, failures))
               for n in range(2)]
    for worker in workers:
        worker.start()
    replaced = 0
    try:
        while any(w.is_alive() for w in workers):
            install_plugin(str(a.bin_dir), other)
            replaced += 1
            time.sleep(0.4)
    finally:
        for worker in workers:
            worker.join()
    assert failures == []
    assert replaced >= 3
    assert a.wait_log_count("installed ", repaired + 2)
    assert a.cluster.wait_for(lambda: mine.read_bytes() == plugin_artifact(str(a.socket)), 5)
    assert os.access(mine, os.X_OK)
