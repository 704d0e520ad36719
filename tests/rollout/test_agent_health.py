"""Issue 23: an agent operators can watch -- its probes, under abuse, and what they mean.

Agents run in simulated nodes (tests/membership/agents.py, static membership),
each in its node's network namespace with the manifest's health port, as a
DaemonSet's agent runs in its node's network.  The attacks are performed as a
local user would: by an unprivileged process (`nobody`) in the node's
network namespace.  Namespaces and processes are the test's own, removed
when it ends, pass or fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from compiler import kubernetes
from runtime.files import locked
from tests.cluster.sim import NODE_A, SimNode
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
    with StaticAgentCluster(tmp_path, bin_dir, (NODE_A,)) as sim:
        yield sim


def _as_nobody(cluster: StaticAgentCluster, node: SimNode, program: str,
               *arguments: str) -> tuple[subprocess.Popen, str]:
    """`program` run by an unprivileged local user in the node, and the first line it said."""
    process = cluster.spawn(cluster.ns(node), *NOBODY, "/usr/bin/python3", "-c", program,
                            *arguments)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _nat_flushed_is_put_back(cluster: StaticAgentCluster, node: SimNode) -> bool:
    """Flush the node's nat table; whether the agent's next converge puts it back."""
    repairs = cluster.log(node.name).count("NAT of network pods")
    cluster.run(cluster.ns(node), "iptables", "-t", "nat", "-F")
    return until(lambda: cluster.log(node.name).count("NAT of network pods") > repairs, 30)


def test_idle_connections_of_a_local_user_neither_silence_the_probes_nor_stop_the_agent(
        cluster):
    """1100 connections that send nothing used to take every descriptor of the agent: its
    health server spun on accept() and /readyz timed out."""
    cluster.start_agent(NODE_A, files=1024)
    assert cluster.wait_ready(NODE_A.name), cluster.log(NODE_A.name)
    holder, held = _as_nobody(cluster, NODE_A, HOLDER, str(IDLE_CONNECTIONS),
                              str(kubernetes.HEALTH_PORT))
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
    assert "health endpoint unavailable: cannot listen on 127.0.0.1:9943" in \
        cluster.log(NODE_A.name), cluster.log(NODE_A.name)
    assert _nat_flushed_is_put_back(cluster, NODE_A)
    squatter.kill()
    squatter.wait()
    assert until(lambda: cluster.http(NODE_A, "/readyz") == (200, "ok"), 60), \
        cluster.log(NODE_A.name)
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
        assert status == 503 and body.startswith("the agent's loop has not come round for "), \
            body
        assert "(converging)" in body, body
    assert until(lambda: cluster.http(NODE_A, "/livez") == (200, "ok"), 40), \
        cluster.log(NODE_A.name)


def _warm_server(agent: subprocess.Popen) -> int:
    (server,) = [pid for pid in children(agent.pid)
                 if b"serve-cni" in Path(f"/proc/{pid}/cmdline").read_bytes()]
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
        assert until(lambda: cluster.http(NODE_A, "/livez")[0] == 503, 60), \
            cluster.log(NODE_A.name)
        _, body = cluster.http(NODE_A, "/livez")
        failed = re.match(r"(\d+) starts of the warm server in a row failed, the last: the "
                          r"warm server ended \(status 3\) before it listened on ", body)
        assert failed and int(failed[1]) >= 3, body
        assert "is writable by others" in body
        assert cluster.http(NODE_A, "/readyz")[0] == 503
    finally:
        run.chmod(0o700)
    assert until(lambda: cluster.http(NODE_A, "/livez") == (200, "ok"), 60)
    assert until(lambda: cluster.http(NODE_A, "/readyz") == (200, "ok"), 60)
