"""`netc plan --live` compares the plan with a node's kernel, read-only."""

import json
import subprocess
import sys

from compiler.planner.plan import ONE_SHOT
from tests.kernel import networks


def _plan(lab, pod, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "runtime.cli",
        "plan",
        str(lab.tmp / "lab.netdsl"),
        "--container-id",
        pod.container_id,
        "--netns",
        pod.netns,
        "--live",
        "--node-netns",
        lab.node,
        "--detailed-exitcode",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=lab.tmp)


def _states(done: subprocess.CompletedProcess) -> dict[str, str]:
    """Live state by operation; one-shot flushes have none to speak of."""
    document = json.loads(done.stdout)
    return {
        op["summary"]: op["live"]["state"]
        for op in document["operations"]
        if op["kind"] not in ONE_SHOT
    }


def test_live_plan_goes_from_pending_to_nothing_to_do_and_back(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    before = _plan(lab, pod, "--port", "8080:80", "--format", "json")
    assert before.returncode == 2, before.stderr
    states = _states(before)
    assert states["net.ipv4.ip_forward = 1"] == "different"
    assert {
        v for k, v in states.items() if k.startswith(("veth pair", "DNAT chain", "bridge"))
    } == {"create"}
    snapshot = lab.snapshot()
    assert _plan(lab, pod, "--port", "8080:80").returncode == 2
    assert lab.snapshot() == snapshot, "plan --live must not change the node"
    result = lab.add(conflist, pod, ports=("8080:80",))
    after = _plan(lab, pod, "--port", "8080:80")
    assert after.returncode == 0, after.stdout
    assert "nothing to do" in after.stdout
    lab.run(
        lab.node,
        "tc",
        "qdisc",
        "add",
        "dev",
        result["interfaces"][1]["name"],
        "root",
        "handle",
        "1:",
        "tbf",
        "rate",
        "1mbit",
        "burst",
        "10k",
        "latency",
        "50ms",
    )
    lab.run(lab.node, "sysctl", "-w", "net.ipv4.ip_forward=0")
    drift = _plan(lab, pod, "--port", "8080:80", "--format", "json")
    assert drift.returncode == 2
    changed = {k: v for k, v in _states(drift).items() if v != "in-place"}
    assert changed == {"net.ipv4.ip_forward = 1": "different"}


def test_live_plan_of_a_del_shows_what_would_go(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    lab.add(conflist, pod, ports=("8080:80",))
    pending = _plan(lab, pod, "--port", "8080:80", "--command", "del", "--format", "json")
    assert pending.returncode == 2
    assert set(_states(pending).values()) == {"different"}
    lab.delete(conflist, pod)
    done = _plan(lab, pod, "--port", "8080:80", "--command", "del")
    assert done.returncode == 0, done.stdout


def test_a_bridge_mtu_below_1500_survives_the_last_pod_leaving(lab):
    """The kernel resets a bridge's MTU when its last port leaves, unless it was set after
    creation: the first pod's DEL must leave nothing for `plan --live` to report."""
    conflist = lab.network(networks.bridge_network("gateway; masquerade; mtu 1350"))
    pod = lab.pod("p")
    lab.add(conflist, pod)
    lab.delete(conflist, pod)
    (bridge,) = json.loads(lab.run(lab.node, "ip", "-j", "link", "show", "nc-br0").stdout)
    assert bridge["mtu"] == 1350
    states = _states(_plan(lab, lab.pod("q"), "--format", "json"))
    assert states["bridge nc-br0 mtu 1350"] == "in-place", states
