"""An agent operators can watch: its probes (under abuse), metrics and JSON log.

Agents run in simulated nodes (tests/membership/agents.py, static membership),
each in its node's network namespace with the manifest's health port, as a
DaemonSet's agent runs in its node's network.  The attacks are performed as a
local user would: by an unprivileged process (`nobody`) in the node's
network namespace.  Namespaces and processes are the test's own, removed
when it ends, pass or fail.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from compiler import kubernetes
from runtime import driver
from runtime.files import locked
from tests.cluster.sim import NODE_A, NODE_B, SimNode
from tests.kernel.conftest import bin_dir
from tests.membership.agents import StaticAgentCluster, until
from tests.runtimes.host import children

__all__ = ["bin_dir"]

pytestmark = pytest.mark.root

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
IDLE_CONNECTIONS = 1100
"""More than the 1024 descriptors a service usually may open (the agent here may open 1024)."""
HOLDER = """
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
held = []
for _ in range(int(sys.argv[1])):
    connection = socket.socket()
    connection.settimeout(3)
    if connection.connect_ex(("127.0.0.1", int(sys.argv[2]))) != 0:
        break
    held.append(connection)
    time.sleep(0.002)
print(len(held), flush=True)
time.sleep(600)
"""
"""Opens connections to the port one after the other, paced as a server that accepts them
keeps up, and holds them, sending nothing; says how many it opened before one was refused or
timed out (a server that stops accepting fills its listen queue)."""
SQUATTER = """
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
print("bound", flush=True)
time.sleep(600)
"""
"""Takes the port first, and answers nothing."""


@pytest.fixture
def cluster(tmp_path, bin_dir):
    """Node A and node B in the source; an agent on node A only (B is its peer)."""
    with StaticAgentCluster(tmp_path, bin_dir, (NODE_A, NODE_B)) as sim:
        yield sim


def _as_nobody(
    cluster: StaticAgentCluster, node: SimNode, program: str, *arguments: str
) -> tuple[subprocess.Popen, str]:
    """`program` run by an unprivileged local user in the node, and the first line it said."""
    process = cluster.spawn(
        cluster.ns(node), *NOBODY, "/usr/bin/python3", "-c", program, *arguments
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _nat_flushed_is_put_back(cluster: StaticAgentCluster, node: SimNode) -> bool:
    """Flush the node's nat table; whether the agent's next converge puts it back."""
    repairs = cluster.log(node.name).count("NAT of network pods")
    cluster.run(cluster.ns(node), "iptables", "-t", "nat", "-F")
    return until(lambda: cluster.log(node.name).count("NAT of network pods") > repairs, 30)


def test_idle_connections_of_a_local_user_neither_silence_the_probes_nor_stop_the_agent(cluster):
    """1100 connections that send nothing used to take every descriptor of the agent: its
    health server spun on accept() and /readyz timed out."""
    cluster.start_agent(NODE_A, files=1024)
    assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
    holder, held = _as_nobody(
        cluster, NODE_A, HOLDER, str(IDLE_CONNECTIONS), str(kubernetes.HEALTH_PORT)
    )
    assert cluster.http(NODE_A, "/readyz") == (200, "ok"), (held, cluster.log(NODE_A.name))
    assert cluster.http(NODE_A, "/livez") == (200, "ok")
    assert _nat_flushed_is_put_back(cluster, NODE_A), cluster.log(NODE_A.name)
    assert cluster.http(NODE_A, "/readyz") == (200, "ok")
    assert held == str(IDLE_CONNECTIONS), "connections were refused"
    assert holder.poll() is None, "the connections were not held throughout"


def test_a_port_taken_first_leaves_the_agent_working_and_it_listens_once_freed(cluster):
    """A local user bound the health port before the agent started: the agent used to exit,
    installing nothing."""
    cluster.add_node(NODE_A)
    squatter, said = _as_nobody(cluster, NODE_A, SQUATTER, str(kubernetes.HEALTH_PORT))
    assert said == "bound"
    agent = cluster.start_agent(NODE_A)
    assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
    dirs = cluster.dirs(NODE_A)
    assert (dirs["bin"] / "netc-cni").exists() and cluster.conflist_path(NODE_A).exists()
    assert "health endpoint unavailable: cannot listen on 127.0.0.1:9943" in cluster.log(
        NODE_A.name
    ), cluster.log(NODE_A.name)
    assert _nat_flushed_is_put_back(cluster, NODE_A)
    squatter.kill()
    squatter.wait()
    assert until(lambda: cluster.http(NODE_A, "/readyz") == (200, "ok"), 60), cluster.log(
        NODE_A.name
    )
    assert "health endpoint on http://127.0.0.1:9943" in cluster.log(NODE_A.name)
    assert agent.poll() is None


def test_liveness_fails_while_the_agents_loop_is_stuck_not_while_it_is_unready(cluster):
    """A converge that waits on a lock held elsewhere holds up the agent's loop: past
    --stall-after, /livez says so (the kubelet restarts the container), and it answers 200
    again once the loop comes round."""
    cluster.start_agent(NODE_A, "--stall-after", "2")
    assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
    assert cluster.http(NODE_A, "/livez") == (200, "ok")
    network_lock = cluster.tmp / NODE_A.name / "state" / "pods" / "lock"
    with locked(str(network_lock)):  # what a pod's ADD holds, here for longer than a converge
        assert until(lambda: cluster.http(NODE_A, "/livez")[0] == 503, 30)
        status, body = cluster.http(NODE_A, "/livez")
        assert status == 503 and body.startswith("the agent's loop has not come round for "), body
        assert "(converging)" in body, body
    assert until(lambda: cluster.http(NODE_A, "/livez") == (200, "ok"), 40), cluster.log(
        NODE_A.name
    )


def _warm_server(agent: subprocess.Popen) -> int:
    (server,) = [
        pid
        for pid in children(agent.pid)
        if b"serve-cni" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return server


def test_liveness_fails_when_the_warm_server_cannot_be_started_again(cluster):
    """The warm server killed, and its socket's directory made unsafe so that it cannot
    listen again: the agent is not ready, and after three failed starts not live either --
    a restart of the container is what is left to try.  Made safe, it recovers by itself."""
    agent = cluster.start_agent(NODE_A)
    assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
    run = cluster.dirs(NODE_A)["socket"].parent
    run.chmod(0o777)
    try:
        os.kill(_warm_server(agent), signal.SIGKILL)
        assert until(lambda: cluster.http(NODE_A, "/livez")[0] == 503, 60), cluster.log(NODE_A.name)
        _, body = cluster.http(NODE_A, "/livez")
        failed = re.match(
            r"(\d+) starts of the warm server in a row failed, the last: the "
            r"warm server ended \(status 3\) before it listened on ",
            body,
        )
        assert failed and int(failed[1]) >= 3, body
        assert "is writable by others" in body
        assert cluster.http(NODE_A, "/readyz")[0] == 503
    finally:
        run.chmod(0o700)
    assert until(lambda: cluster.http(NODE_A, "/livez") == (200, "ok"), 60)
    assert until(lambda: cluster.http(NODE_A, "/readyz") == (200, "ok"), 60)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(cluster: StaticAgentCluster, node: SimNode) -> Samples:
    """GET /metrics in the node, parsed as Prometheus parses it: (name, labels) -> value."""
    status, text = cluster.http(node, "/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text + "\n")
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_the_agents_work_and_its_warm_servers_calls(cluster):
    """A pod added and deleted through the plugin the agent installed, a CHECK that fails and
    a flushed nat table: /metrics counts them, parsed with prometheus_client's parser."""
    cluster.start_agent(NODE_A)
    assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
    first = _scrape(cluster, NODE_A)
    assert _value(first, "netc_agent_ready") == 1
    assert _value(first, "netc_agent_peers") == 1
    assert _value(first, "netc_agent_converges_total") >= 1
    assert _value(first, "netc_agent_converge_failures_total") == 0
    assert _value(first, "netc_agent_changes_total", kind="plugin") == 2  # shim, cold file
    assert _value(first, "netc_agent_changes_total", kind="conflist") == 1
    assert _value(first, "netc_agent_changes_total", kind="node") > 0
    assert _value(first, "netc_agent_warm_server_starts_total", result="ok") == 1
    assert _value(first, "netc_cni_calls_total", command="ADD", result="ok") == 0

    pod = cluster.add_pod(NODE_A)
    cluster.delete_pod(pod)
    with pytest.raises(driver.PluginFailed):  # no record of the attachment any more
        driver.check(
            driver.Conflist(cluster.conflist_path(NODE_A).read_bytes()),
            cluster.invocation(NODE_A, pod.pod),
        )
    assert _nat_flushed_is_put_back(cluster, NODE_A)

    def counted() -> bool:  # the server's reports reach the agent asynchronously
        samples = _scrape(cluster, NODE_A)
        return _value(samples, "netc_cni_calls_total", command="CHECK", result="drift") == 1

    assert until(counted, 30), _scrape(cluster, NODE_A)
    last = _scrape(cluster, NODE_A)
    for command in ("ADD", "DEL"):
        assert _value(last, "netc_cni_calls_total", command=command, result="ok") == 1
        assert (
            _value(last, "netc_cni_call_duration_seconds_count", command=command, result="ok") == 1
        )
        assert _value(last, "netc_cni_call_duration_seconds_sum", command=command, result="ok") > 0
    assert (
        _value(last, "netc_cni_call_duration_seconds_bucket", command="ADD", result="ok", le="+Inf")
        == 1
    )
    assert _value(last, "netc_cni_lock_wait_seconds_count", lock="attachment") == 3
    assert _value(last, "netc_cni_lock_wait_seconds_count", lock="addresses") >= 1
    assert _value(last, "netc_cni_handovers_refused_total") == 0
    assert _value(last, "netc_agent_drift_repairs_total", kind="node") >= 1
    assert _value(first, "netc_agent_drift_repairs_total", kind="node") == 0

    def converged_again() -> bool:  # the converge that repaired counts once it has ended
        converges = _value(_scrape(cluster, NODE_A), "netc_agent_converges_total")
        return converges > _value(first, "netc_agent_converges_total")

    assert until(converged_again, 30), _scrape(cluster, NODE_A)


def _events(cluster: StaticAgentCluster, node: SimNode) -> list[dict]:
    """The agent's log, every line of it a JSON object."""
    return [json.loads(line) for line in cluster.log(node.name).splitlines()]


def test_the_json_log_has_an_object_per_line_and_an_event_per_change_to_the_node(cluster):
    cluster.start_agent(NODE_A, "--log-format", "json")
    assert until(lambda: any(e["event"] == "ready" for e in _events(cluster, NODE_A)), 60), (
        cluster.log(NODE_A.name)
    )
    assert _nat_flushed_is_put_back(cluster, NODE_A)
    events = _events(cluster, NODE_A)
    assert {e["node"] for e in events if e["event"] != "warm server"} == {"node-a"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in events)
    bin_dir, conf_dir = cluster.dirs(NODE_A)["bin"], cluster.dirs(NODE_A)["net.d"]
    installed = [e for e in events if e["event"] == "installed"]
    assert [e["path"] for e in installed] == [f"{bin_dir}/.netc-cni-cold", f"{bin_dir}/netc-cni"]
    assert installed[1]["detail"] == f"installed {bin_dir}/netc-cni"
    (wrote,) = [e for e in events if e["event"] == "wrote"]
    assert (wrote["path"], wrote["network"]) == (f"{conf_dir}/10-pods.conflist", "pods")
    applied = [e for e in events if e["event"] == "applied"]
    nat = [e for e in applied if "NAT of network pods" in e["detail"]]
    assert len(nat) == 2 and {e["network"] for e in nat} == {"pods"}  # set up, then repaired
    route = next(e for e in applied if "route to node-b's pods" in e["detail"])
    assert "network" not in route  # the cluster's, not one network's
    assert any(e["event"] == "warm server" and "listening on" in e["detail"] for e in events)
