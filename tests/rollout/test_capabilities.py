"""What the agent cannot do without each capability the DaemonSet gives it, through containerd.

One simulated node without Python (so a call the warm server refuses fails
for all to see, with CNI error 11, instead of running cold) and the agent's
DaemonSet with one capability taken away at a time, run as the kubelet runs
it.  What each case shows is the row of docs/deployment.md's table: the
agent not ready and why, or ready with pods refused, or nothing at all.
The first case runs on the fresh node, before any agent has set it up.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from compiler import kubernetes
from tests.cluster.sim import NODE_A
from tests.rollout.nodes import AgentNode, RolloutCluster, pause_image
from tests.runtimes.conftest import require

pytestmark = [pytest.mark.runtimes, pytest.mark.root]

SETTLE = 30.0
"""Seconds an agent may take to be ready or to say why not."""


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, agent_image_archive: Path
) -> Iterator[AgentNode]:
    require("containerd")
    tmp = tmp_path_factory.mktemp("capabilities")
    with RolloutCluster(tmp / "cluster", (NODE_A,)) as sim:
        made = AgentNode(sim, NODE_A, [agent_image_archive, pause_image(tmp, sim)], no_python=True)
        try:
            yield made
        finally:
            made.close()


def _without(node: AgentNode, capability: str, **environment: str) -> dict[str, Any]:
    """The manifests' DaemonSet, its agent without `capability`, with more variables."""
    daemon_set = copy.deepcopy(node.document("DaemonSet"))
    (container,) = daemon_set["spec"]["template"]["spec"]["containers"]
    added = container["securityContext"]["capabilities"]["add"]
    assert capability in added
    added.remove(capability)
    container["env"] += [{"name": k, "value": v} for k, v in environment.items()]
    return daemon_set


def _run(node: AgentNode, daemon_set: dict[str, Any]) -> tuple[str, str]:
    """The agent of `daemon_set` started, then a pod: (readiness, the pod's outcome)."""
    start = node.starts
    node.start_agent(daemon_set, wait=False)

    def settled() -> bool:
        return node.ready() or "not ready: " in node.container_log(start)

    try:
        assert node.cluster.wait_for(settled, SETTLE), node.container_log(start)
        readiness = "ready" if node.ready() else node.readiness()[1]
        try:
            pod = node.run_pod(f"probe{start}", 8090 + start, {})
        except grpc.RpcError as error:
            outcome = error.details() or ""
        else:
            outcome = "attached"
            node.remove_pod(pod)
        return readiness, outcome
    finally:
        node.stop_agent()


def test_without_net_admin_the_agent_cannot_set_the_node_up(node):
    readiness, outcome = _run(node, _without(node, "NET_ADMIN"))
    assert "Operation not permitted" in readiness, readiness
    assert "cni plugin not initialized" in outcome, outcome  # no conflist was written


@pytest.mark.parametrize("capability", ["SYS_ADMIN", "SYS_CHROOT"])
def test_without_a_setns_capability_the_warm_server_cannot_take_calls(node, capability):
    readiness, outcome = _run(node, _without(node, capability))
    assert readiness == "ready"
    assert "netc's agent is not running on this node: try again later" in outcome, outcome
    assert "hand-over refused: cannot enter the caller's namespaces" in node.log()


def test_without_net_raw_an_nft_node_works_and_a_legacy_one_does_not(node):
    assert _run(node, _without(node, "NET_RAW")) == ("ready", "attached")
    readiness, _ = _run(node, _without(node, "NET_RAW", NETC_IPTABLES="legacy"))
    assert "iptables-legacy" in readiness and "Permission denied" in readiness, readiness


def test_with_every_capability_it_works(node):
    daemon_set = node.document("DaemonSet")
    (container,) = daemon_set["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["capabilities"]["add"] == list(kubernetes.CAPABILITIES)
    assert _run(node, daemon_set) == ("ready", "attached")
