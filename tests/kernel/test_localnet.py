"""A pod cannot reach the node's 127.0.0.1 through route_localnet.

A network with host ports sets `route_localnet=1` on its bridge, so that
`127.0.0.1:hostPort` works from the node.  That setting also lets the bridge
accept packets addressed to 127.0.0.0/8 from the pods (CVE-2020-8558's
class): a pod with CAP_NET_RAW writes a frame to the gateway's MAC with
destination 127.0.0.1 and reaches whatever listens there on the node.
These tests send exactly such frames and watch a server bound to the node's
127.0.0.1; a datagram to the gateway's own address, sent after the attack
from the same CPU, says when the attack frame has been dealt with.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from compiler.pipeline import compile_sources
from compiler.planner.node import node_plan
from compiler.source import SourceFile
from runtime.apply import apply_node
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod

PORT = 9999
GATEWAY = "10.77.0.1"


@pytest.fixture
def attacked(lab: Lab) -> tuple[Lab, Pod, str]:
    """A pod on a network with host ports, and its address."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("tenant")
    result = lab.add(conflist, pod)
    return lab, pod, result["ips"][0]["address"].split("/")[0]


def _watch(lab: Lab) -> subprocess.Popen:
    """A UDP server on the node's 127.0.0.1 and one on the gateway address, same port."""
    process = lab.spawn(
        lab.node,
        sys.executable,
        "-m",
        "tests.kernel.netprobe",
        "watch",
        str(PORT),
        "127.0.0.1",
        GATEWAY,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def _attack(lab: Lab, pod: Pod, address: str, watcher: subprocess.Popen, tag: str) -> list[str]:
    """Frames to 127.0.0.1 then to the gateway; what the node's servers saw up to the second."""
    links = json.loads(lab.run(lab.node, "ip", "-j", "link", "show", "nc-br0").stdout)
    lab.run(
        pod.name,
        sys.executable,
        "-m",
        "tests.kernel.netprobe",
        "frame",
        "eth0",
        links[0]["address"],
        address,
        str(PORT),
        f"127.0.0.1={tag}",
        f"{GATEWAY}=done-{tag}",
    )
    seen = []
    assert watcher.stdout is not None
    while (line := watcher.stdout.readline().strip()) != f"{GATEWAY} done-{tag}":
        assert line, "the watching server ended"
        seen.append(line)
    return seen


def _localnet_guard(lab: Lab) -> list[str]:
    """netc's guard as the node's raw table holds it: its jump from PREROUTING, its drop."""
    listing = lab.run(lab.node, "iptables-save", "-t", "raw").stdout.splitlines()
    return [line for line in listing if line.startswith(("-A PREROUTING", "-A NETC-LO-"))]


def test_a_pod_frame_to_the_node_loopback_is_dropped(attacked):
    lab, pod, address = attacked
    assert (
        lab.run(lab.node, "sysctl", "-n", "net.ipv4.conf.nc-br0.route_localnet").stdout.strip()
        == "1"
    )
    watcher = _watch(lab)
    assert _attack(lab, pod, address, watcher, "first") == []
    # The probe itself works: without netc's guard the same frame reaches 127.0.0.1.
    jump, drop = _localnet_guard(lab)
    assert "-d 127.0.0.0/8 -i nc-br0 -j DROP" in drop
    lab.run(lab.node, "iptables", "-w", "-t", "raw", *shlex.split(jump.replace("-A ", "-D ", 1)))
    assert _attack(lab, pod, address, watcher, "second") == ["127.0.0.1 second"]


def test_a_node_apply_puts_a_flushed_guard_back(attacked):
    """A firewall reload flushes the table; the agent's next converge (an apply) repairs it."""
    lab, pod, address = attacked
    lab.run(lab.node, "iptables", "-w", "-t", "raw", "-F")
    (network,) = compile_sources(
        [SourceFile("lab.netdsl", (lab.tmp / "lab.netdsl").read_text())]
    ).networks
    apply_node(node_plan(None, "node", [network]), [network], lab.node)
    assert len(_localnet_guard(lab)) == 2
    assert _attack(lab, pod, address, _watch(lab), "after-flush") == []


def test_the_next_add_puts_a_flushed_guard_back(attacked):
    """A pod's ADD checks the shape of its network's chains, the guard's included."""
    lab, pod, address = attacked
    lab.run(lab.node, "iptables", "-w", "-t", "raw", "-F")
    lab.add(lab.network(networks.FULL), lab.pod("next"))
    assert len(_localnet_guard(lab)) == 2
    assert _attack(lab, pod, address, _watch(lab), "after-add") == []
