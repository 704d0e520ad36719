"""netc's agent image run through containerd's CRI as a DaemonSet pod.

Two simulated nodes (tests/rollout/nodes.py), each with its own containerd
1.6 in mount namespaces of their own -- /etc/cni/net.d, /opt/cni/bin,
/run/netc, /var/lib/cni and /var/lib/netc are each node's own, at the default
paths -- and the agent pod of one `netc build --target kubernetes` for both:
host network, the manifest's capabilities, seccomp profile, environment and
hostPath mounts, the ConfigMap in the kubelet's layout.  Node B has no
Python at all: its plugin is the agent's shim alone.  Workload pods are
started through the same CRI, so containerd runs the plugin the agent
installed, as it would on a node.  The cluster is shared by the module; each
test leaves it as it found it (both agents ready, the first configuration, no
workload pod).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from compiler.planner.names import AttachmentNames
from runtime import shim
from runtime.artifact import INTERPRETERS, plugin_artifact
from tests.cluster.sim import CLIENT, NODE_A, NODE_B, NODE_C, SimNode
from tests.rollout.nodes import BIN_DIR, CONF_DIR, SOCKET, AgentNode, RolloutCluster, pause_image
from tests.runtimes.conftest import require
from tests.runtimes.host import children, processes_naming
from tests.runtimes.network import page, tbf
from tests.support import ROOT, python_of

pytestmark = [pytest.mark.runtimes, pytest.mark.root]

NETWORK = "pods"
BANDWIDTH = {"kubernetes.io/ingress-bandwidth": "8M", "kubernetes.io/egress-bandwidth": "4M"}
PROBE_PORT = 9100
PYTHON_3_10 = python_of((3, 10))


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
def scene(tmp_path_factory: pytest.TempPathFactory, agent_image_archive: Path) -> Iterator[Scene]:
    require("containerd")
    tmp = tmp_path_factory.mktemp("rollout")
    with RolloutCluster(tmp / "cluster", (NODE_A, NODE_B)) as sim:
        images = [agent_image_archive, pause_image(tmp, sim)]
        nodes: list[AgentNode] = []
        try:
            with ThreadPoolExecutor(2) as pool:  # node B has no Python
                nodes += pool.map(
                    lambda n: AgentNode(sim, n, images, no_python=n is NODE_B), (NODE_A, NODE_B)
                )
                before = {name: n.cri.network_ready() for name, n in zip("ab", nodes, strict=True)}
                ready = dict(zip("ab", pool.map(AgentNode.start_agent, nodes), strict=True))
            yield Scene(sim, *nodes, ready_after=ready, network_before=before)
        finally:
            for node in nodes:
                node.close()


# what the tests look at


def _http(scene: Scene, node: SimNode, port: int) -> str:
    """What the client outside the cluster gets from a node's host port."""
    done = scene.sim.run(
        scene.sim.client,
        "curl",
        "-sS",
        "--max-time",
        "5",
        f"http://{node.address}:{port}/",
        check=False,
    )
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
    return {
        r["dst"]: r
        for r in node.cluster.ip_json(node.node, "route", "show")
        if r.get("protocol") == "78"
    }


def _mtu(scene: Scene, netns: str, device: str) -> int:
    (link,) = json.loads(scene.sim.run(netns, "ip", "-j", "link", "show", device).stdout)
    return link["mtu"]


def _owned(node: AgentNode) -> set[str]:
    """The conflists netc's manifest in the conf dir says it owns."""
    return set(json.loads(node.read(f"{CONF_DIR}/.netc-owned") or b"{}")["files"])


def _plugin(node: AgentNode) -> bytes | None:
    return node.read(f"{BIN_DIR}/netc-cni")


OTHER_SOCKET = "/run/netc/other.sock"
"""Where another agent's shim looks for its server: nothing listens there."""


def _expected_shim() -> bytes:
    """The shim the agent installs: compiled as the image's was, for the default socket."""
    return shim.for_bin_dir(shim.compiled(), BIN_DIR, SOCKET, INTERPRETERS)


# the proof


def test_the_agent_sets_the_node_up_and_writes_the_conflist_last(scene):
    """The runtime reports no network until the agent's conflist is there, and that comes
    after the plugin, the node's plan and the warm server (kubernetes#48798, cilium#32168)."""
    a = scene.a
    assert scene.network_before == {"a": False, "b": False}
    assert a.cri.network_ready()
    assert a.readiness() == (200, "ok")
    assert set(a.conflists()) == {"10-pods.conflist"}
    said = [
        line.split()[2]
        for line in a.container_log(0).splitlines()
        if line.startswith("netc agent: ")
    ]
    firsts = [
        said.index(word)
        for word in ("configuration", "iptables", "installed", "applied", "warm", "wrote", "ready")
    ]
    assert firsts == sorted(firsts), said
    assert "netc agent: iptables backend nft (0 in nft, 0 in legacy rules)" in a.log()
    assert a.config.data() == scene.b.config.data(), "one ConfigMap for every node"


def test_a_cri_pod_gets_its_network_from_what_the_agent_installed(scene):
    a = scene.a
    assert _plugin(a) == _expected_shim(), "not the shim for the agent's socket"
    assert a.read(f"{BIN_DIR}/{shim.COLD}") == plugin_artifact(None), "not the cold artifact"
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
    for python in ("/usr/bin/python3", "/usr/bin/python3.11", "/bin/python3"):
        assert b.in_node("test", "-x", python, check=False).returncode != 0, python
    pods = {a: a.run_pod("left", 8081, {}), b: b.run_pod("right", 8081, {})}
    probes = []
    try:
        addresses = {node: node.pod_address(pod) for node, pod in pods.items()}
        assert ipaddress.ip_address(addresses[b]) in NODE_B.subnet(4)
        probes = [_probe(scene, node.pod_netns(pod), node.node.name) for node, pod in pods.items()]
        # the receiver answers with the source it saw: the sender's pod address
        assert (
            scene.sim.ask(a.pod_netns(pods[a]), "tcp", addresses[b], PROBE_PORT)
            == f"{NODE_B.name} {addresses[a]}"
        )
        assert (
            scene.sim.ask(b.pod_netns(pods[b]), "tcp", addresses[a], PROBE_PORT)
            == f"{NODE_A.name} {addresses[b]}"
        )
        # and the outside world sees the node's address (masqueraded)
        scene.sim.serve(scene.sim.client, "tcp", PROBE_PORT, "client")
        assert (
            scene.sim.ask(a.pod_netns(pods[a]), "tcp", CLIENT, PROBE_PORT)
            == f"client {NODE_A.address}"
        )
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
    logged = node.wait_log_count(f"removed stale {CONF_DIR}/{old}", 1)
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
        assert (
            scene.sim.ask(a.pod_netns(before), "tcp", peer_address, PROBE_PORT)
            == f"peer {old_address}"
        )
        assert _serves(scene, NODE_A, 8082)
        after = a.run_pod("new", 8083, {})
        assert _mtu(scene, a.pod_netns(after), "eth0") == 1400
        assert (
            scene.sim.ask(a.pod_netns(after), "tcp", peer_address, PROBE_PORT)
            == f"peer {a.pod_address(after)}"
        )
        a.remove_pod(after)
    finally:
        _unprobe(scene, probe)
        a.remove_pod(before)
        b.remove_pod(peer)
        _publish(scene, nodes=(NODE_A, NODE_B), mtu=1500, priority=10)
        for node in (a, b):
            assert _converged(node, "20-pods.conflist", "10-pods.conflist"), node.log()
            assert scene.sim.wait_for(lambda n=node: str(NODE_C.subnet(4)) not in _routes(n))


def _direct_call(
    node: AgentNode, plugin: str, command: str, container: str, netns: str
) -> subprocess.CompletedProcess:
    """`plugin` run on the node as a runtime runs the installed one, for its network."""
    (conflist,) = node.conflists().values()
    config = {
        **conflist["plugins"][0],
        "name": conflist["name"],
        "cniVersion": conflist["cniVersion"],
    }
    environment = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": f"/run/netns/{netns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": BIN_DIR,
    }
    return node.in_node(
        "env",
        *(f"{k}={v}" for k, v in environment.items()),
        plugin,
        stdin=json.dumps(config).encode(),
        check=False,
    )


def _add_and_delete_directly(node: AgentNode, plugin: str, role: str) -> dict:
    """One ADD and DEL of a new pod namespace through `plugin`; the ADD's result."""
    netns = node.cluster.netns(role)
    container = f"{node.cluster.tag}-{role}"
    try:
        added = _direct_call(node, plugin, "ADD", container, netns)
        assert added.returncode == 0, added.stdout + added.stderr
        deleted = _direct_call(node, plugin, "DEL", container, netns)
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    finally:
        node.cluster.remove_netns(netns)
    return json.loads(added.stdout)


def _cold_add_on_python_3_10(node: AgentNode) -> None:
    """One cold ADD and DEL through the artifact on the oldest Python it supports."""
    if PYTHON_3_10 is None:
        return
    plugin = node.root / "netc-cni-py310"  # the agent's cold file, finding only Python 3.10
    plugin.write_bytes(plugin_artifact(None, interpreters=(PYTHON_3_10,)))
    plugin.chmod(0o755)
    (ip,) = _add_and_delete_directly(node, str(plugin), "py310")["ips"]
    assert ipaddress.ip_interface(ip["address"]) in node.node.subnet(4)


def test_with_the_agent_stopped_pods_attach_cold_and_it_takes_over_unchanged(scene):
    a = scene.a
    old = a.run_pod("before", 8084, {})
    conflists, plugin = a.conflists(), _plugin(a)
    assert a.stop_agent() == 0, a.container_log(a.starts - 1)
    assert (f"the plugin {BIN_DIR}/netc-cni and 1 conflist of netc's in {CONF_DIR} stay") in a.log()
    assert a.readiness()[0] == 0, "the agent still answers"
    assert a.in_node("test", "-e", SOCKET, check=False).returncode != 0, "its socket stayed"
    assert (a.conflists(), _plugin(a)) == (conflists, plugin)
    during = a.run_pod("during", 8085, {})  # no server: the shim runs the cold file
    try:
        assert ipaddress.ip_address(a.pod_address(during)) in NODE_A.subnet(4)
        assert _serves(scene, NODE_A, 8085)
        own = AttachmentNames(NETWORK, old, "eth0")
        a.remove_pod(old)
        assert own.host_veth not in scene.sim.run(a.netns, "ip", "-o", "link").stdout
        _cold_add_on_python_3_10(a)
        state = scene.sim.kernel_state(a.netns)
        starts = a.starts
        a.start_agent()
        assert scene.sim.kernel_state(a.netns) == state, "the agent changed the node"
        said = [
            line.split()[2]
            for line in a.container_log(starts).splitlines()
            if line.startswith("netc agent: ")
            and not line.startswith("netc agent: health endpoint")
        ]  # its own thread
        assert said == ["configuration", "iptables", "warm", "ready"], a.container_log(starts)
        assert _serves(scene, NODE_A, 8085)
    finally:
        a.remove_pod(during)


def test_on_a_node_without_python_an_add_without_the_agent_is_to_be_tried_again(scene):
    """The shim answers CNI error 11 while no server answers and the node has no Python for
    its cold file; the kubelet retries, and once the agent is back the pod starts."""
    b = scene.b
    assert b.stop_agent() == 0, b.container_log(b.starts - 1)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            b.run_pod("waiting", 8087, {})
        assert (
            "netc's agent is not running on this node: try again later" in refused.value.details()
        )
    finally:
        b.start_agent()
    pod = b.run_pod("started", 8087, {})
    try:
        assert ipaddress.ip_address(b.pod_address(pod)) in NODE_B.subnet(4)
    finally:
        b.remove_pod(pod)


def test_netc_install_plugin_works_on_a_node_without_python_with_the_agents_server(scene):
    """The node-by-hand install: its shim hands calls to the agent's warm server."""
    b = scene.b
    by_hand = b.root / "by-hand"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "install-plugin",
            "--bin-dir",
            str(by_hand),
            "--warm-socket",
            SOCKET,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    served = b.log().count("call handed to process")
    (ip,) = _add_and_delete_directly(b, str(by_hand / "netc-cni"), "byhand")["ips"]
    assert ipaddress.ip_interface(ip["address"]) in NODE_B.subnet(4)
    # the container's log reaches its file through containerd's shim, a little later
    assert scene.sim.wait_for(lambda: b.log().count("call handed to process") == served + 2)


def test_nat_flushed_on_a_node_is_put_back_by_the_agent(scene):
    """NAT drift through the DaemonSet: `iptables -t nat -F` on a node (a firewall
    reload) and the agent's periodic converge puts the NAT back from the kernel's state."""
    a = scene.a

    def nat() -> str:
        return a.in_node("iptables-save", "-t", "nat").stdout.decode()

    before = nat()
    assert "-A POSTROUTING" in before and "NETC-PO-" in before
    applied = a.log().count("netc agent: applied ")
    a.in_node("iptables", "-t", "nat", "-F")
    assert scene.sim.wait_for(lambda: "-A POSTROUTING" in nat(), 15), a.log()
    assert sorted(line for line in nat().splitlines() if line.startswith("-A")) == sorted(
        line for line in before.splitlines() if line.startswith("-A")
    )
    assert a.log().count("netc agent: applied ") > applied


def _in_netns(pid: int, netns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return False


def test_a_warm_server_that_dies_is_started_again(scene):
    b = scene.b
    serving = {
        pid
        for pid, command in processes_naming(SOCKET).items()
        if "serve-cni" in command and _in_netns(pid, b.netns)
    }  # the server and its spare
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
    for round_ in range(rounds):
        netns = sim.netns(f"w{worker}r{round_}")
        who = [
            "--container-id",
            f"{sim.tag}-w{worker}-{round_}",
            "--netns",
            f"/run/netns/{netns}",
            "--cni-path",
            BIN_DIR,
            "--cache-dir",
            str(node.root / "cache"),
        ]
        for command in ("add", "del"):
            done = node.netc("run", command, f"{CONF_DIR}/10-pods.conflist", *who, check=False)
            if done.returncode != 0:
                failures.append(done.stdout.decode() + done.stderr.decode())
        sim.remove_netns(netns)


def test_the_plugin_replaced_while_adds_run_fails_no_add(scene):
    """Someone installs another plugin (another agent's shim, aimed at a socket where no server
    listens: it runs the cold file) by rename while two runtimes' ADDs run; the agent's drift
    repair puts its own back: every ADD succeeds.

    Not a script: the kernel hands a script's path to its interpreter, which opens it again,
    and may then read the shim renamed over it meanwhile (`/bin/sh` reading an ELF file).
    """
    a = scene.a
    other = a.root / "other-plugin"
    other.write_bytes(shim.for_bin_dir(shim.compiled(), BIN_DIR, OTHER_SOCKET, INTERPRETERS))
    replace = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from runtime.agent import install_plugin; "
        "install_plugin(sys.argv[2], open(sys.argv[3], 'rb').read())"
    )
    repaired = a.log().count(f"installed {BIN_DIR}/netc-cni")
    failures: list[str] = []
    workers = [threading.Thread(target=_add_and_delete, args=(a, n, 6, failures)) for n in range(2)]
    for worker in workers:
        worker.start()
    replaced = 0
    try:
        while any(w.is_alive() for w in workers):
            a.in_node(sys.executable, "-c", replace, str(ROOT), BIN_DIR, str(other))
            replaced += 1
            time.sleep(0.4)
    finally:
        for worker in workers:
            worker.join()
    assert failures == []
    assert replaced >= 3
    assert a.wait_log_count(f"installed {BIN_DIR}/netc-cni", repaired + 2)
    assert a.cluster.wait_for(lambda: _plugin(a) == _expected_shim(), 5)
    assert a.in_node("test", "-x", f"{BIN_DIR}/netc-cni", check=False).returncode == 0
