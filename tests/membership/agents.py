"""A simulated cluster whose nodes join by themselves: an agent on each, etcd on the underlay.

The cluster's source lists no node: each node's `netc agent` claims a block
in etcd, publishes its address, follows the others and sets its node up
(routes, VXLAN entries, bridge, NAT), then writes its conflist; pods attach
through that conflist and the plugin the agent installed.  Every agent runs
inside its node's network namespace, as a DaemonSet's agent runs in the
node's network (hostNetwork), with its own directories -- real nodes share
no disk -- in the test's mount namespace.
Agents, etcd members, namespaces and directories are removed at the end.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compiler import kubernetes
from compiler.cluster import vtep_mac
from compiler.ir import Node
from compiler.planner.context import mapping_from_option
from runtime import driver
from tests.cluster.sim import CLUSTER, HOST_PORT, POD_PORT, SimCluster, SimNode, SimPod
from tests.kernel.lab import Pod
from tests.membership.etcd_cluster import EtcdCluster
from tests.support import ROOT

LEASE = 3
"""Seconds of a member's lease here (60 on a real cluster)."""


class AgentCluster(SimCluster):
    """The simulated cluster, etcd, and an agent per node that has joined."""

    def __init__(
        self,
        tmp: Path,
        bin_dir: Path,
        mode: str,
        *,
        pod_cidr: str = "10.244.0.0/16",
        lease: int = LEASE,
    ) -> None:
        self.pod_cidr = pod_cidr
        self.lease = lease
        self.home = Path(tempfile.mkdtemp(prefix="netc-ag-"))  # short: unix sockets
        self.agents: dict[str, subprocess.Popen] = {}
        super().__init__(tmp, bin_dir, mode, False, ())
        try:
            self.start_datastore()
        except BaseException:
            self.close()
            raise

    def start_datastore(self) -> None:
        """Where the members are: a 3-member etcd on the underlay."""
        self.etcd = EtcdCluster(self)

    def membership(self) -> str:
        """The cluster's `membership` statement."""
        endpoints = ", ".join(self.etcd.endpoints)
        return (
            f"    membership etcd {{\n        endpoints {endpoints}\n"
            f"        lease {self.lease}s\n    }}\n"
        )

    def agent_options(self, node: SimNode) -> list[str]:
        """What the agent needs besides the options every agent gets."""
        return ["--memory-dir", str(self.dirs(node)["memory"])]

    def close(self) -> None:
        for name in list(self.agents):
            self.stop_agent(name, signal.SIGKILL)
        super().close()
        shutil.rmtree(self.home, ignore_errors=True)

    # the cluster's source: no node listed, members from etcd

    def source(self) -> str:
        routing = (
            f"    routing {self.mode} {{ vni {self.vni}; underlay-mtu 1500 }}\n"
            if self.mode != "host-gw"
            else "    routing host-gw\n"
        )
        return (
            f"cluster {CLUSTER} {{\n    pod-cidr {self.pod_cidr}\n    node-block /24\n"
            f"{routing}{self.membership()}}}\n\n"
            'network pods {\n    state-dir "{state}"\n'
            "    bridge cni0 { gateway; masquerade }\n"
            f'    ipam {{ cluster {CLUSTER}; data-dir "{{data}}"; route 0.0.0.0/0 }}\n'
            "    hostport\n}\n"
        )

    def config(self, node: SimNode) -> Path:
        """The ConfigMap's netc.json as this node's agent reads it (its own directories)."""
        compilation = self.compiled(node)
        path = self.dirs(node)["config"]
        path.write_text(kubernetes.render_config(compilation.clusters, compilation.networks))
        return path

    def mac(self, node: SimNode) -> str:
        """The MAC of a node's VXLAN device (derived from cluster and node names)."""
        (cluster,) = self.compiled(node).clusters
        return vtep_mac(cluster, Node(node.name, (), ()))

    def dirs(self, node: SimNode | str) -> dict[str, Path]:
        """Where a node's agent keeps what a node keeps on its own disk."""
        name = node if isinstance(node, str) else node.name
        base = self.home / name
        return {
            "config": base / "netc.json",
            "net.d": base / "net.d",
            "bin": base / "bin",
            "socket": base / "run" / "cni.sock",
            "memory": base / "memory",
            "log": base / "agent.log",
        }

    # agents

    def start_agent(self, node: SimNode, *extra: str, files: int | None = None) -> subprocess.Popen:
        """The node (on the underlay, if new) and its agent, started, with `extra` options.

        Its health endpoint is on the manifest's port, in the node's own network
        namespace; `files` limits the descriptors it may open (RLIMIT_NOFILE).
        """
        if node.name not in self.nodes:
            self.add_node(node)
        dirs = self.dirs(node)
        for key in ("net.d", "bin", "memory"):
            dirs[key].mkdir(parents=True, exist_ok=True)
        dirs["socket"].parent.mkdir(parents=True, exist_ok=True)
        limit = ["prlimit", f"--nofile={files}:{files}"] if files is not None else []
        command = [
            "ip",
            "netns",
            "exec",
            self.ns(node),
            *limit,
            sys.executable,
            "-m",
            "runtime.cli",
            "agent",
            "--config",
            str(self.config(node)),
            "--node-name",
            node.name,
            "--cni-conf-dir",
            str(dirs["net.d"]),
            "--cni-bin-dir",
            str(dirs["bin"]),
            "--socket",
            str(dirs["socket"]),
            "--interval",
            "1",
            "--health-port",
            str(kubernetes.HEALTH_PORT),
            *self.agent_options(node),
            *extra,
        ]
        with dirs["log"].open("a") as log:
            agent = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        self.agents[node.name] = agent
        return agent

    def stop_agent(self, name: str, how: signal.Signals = signal.SIGTERM) -> int:
        """Stop a node's agent (SIGTERM: as the kubelet does; SIGKILL: a crash)."""
        agent = self.agents.pop(name)
        agent.send_signal(how)
        try:
            return agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            return agent.wait()

    def log(self, name: str) -> str:
        path = self.dirs(name)["log"]
        return path.read_text(errors="replace") if path.exists() else ""

    def http(self, node: SimNode, path: str, timeout: float = 5) -> tuple[int, str]:
        """GET 127.0.0.1:9943`path` inside the node, as its kubelet's probes do: status, body
        (status 0: no answer within `timeout` seconds)."""
        done = self.run(
            self.ns(node),
            "curl",
            "-sS",
            "--max-time",
            str(timeout),
            "-w",
            "\n%{http_code}",
            f"http://127.0.0.1:{kubernetes.HEALTH_PORT}{path}",
            check=False,
            timeout=timeout + 30,
        )
        body, _, status = done.stdout.rpartition("\n")
        return int(status or 0), body.removesuffix("\n")

    def wait_ready(self, name: str, times: int = 1, timeout: float = 60) -> bool:
        """Whether the agent has said `ready` `times` times within `timeout` seconds."""
        return self.wait_for(lambda: self.log(name).count("netc agent: ready") >= times, timeout)

    def members(self, name: str) -> dict[str, Any]:
        """What the node's agent says of the members (the file `netc status` reads)."""
        path = self.dirs(name)["socket"].parent / "membership.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def status(self, node: SimNode) -> subprocess.CompletedProcess:
        """`netc status` on the node, of its agent's conflists and membership file."""
        dirs = self.dirs(node)
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "runtime.cli",
                "status",
                str(dirs["net.d"]),
                "--node-netns",
                self.ns(node),
                "--membership",
                str(dirs["socket"].parent / "membership.json"),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=ROOT,
        )

    def plan_live_members(self, node: SimNode) -> subprocess.CompletedProcess:
        """`netc plan --node NAME --live-members` of the cluster's source, asked from the client
        (which reaches etcd on the underlay)."""
        return subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.client,
                sys.executable,
                "-m",
                "runtime.cli",
                "plan",
                str(self.source_file(node)),
                "--node",
                node.name,
                "--live-members",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=ROOT,
        )

    def block(self, name: str) -> int | None:
        return self.members(name).get("block")

    def leave(self, node: SimNode) -> subprocess.CompletedProcess:
        """`netc leave` for the node, from inside it."""
        return subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.ns(node),
                sys.executable,
                "-m",
                "runtime.cli",
                "leave",
                "--config",
                str(self.dirs(node)["config"]),
                "--node-name",
                node.name,
                "--memory-dir",
                str(self.dirs(node)["memory"]),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=ROOT,
        )

    # pods, through what the agent wrote and installed

    def conflist_path(self, node: SimNode) -> Path:
        return self.dirs(node)["net.d"] / "10-pods.conflist"

    def invocation(self, node: SimNode, pod: Pod, host_port: int = HOST_PORT) -> driver.Invocation:
        """How the node's runtime calls the plugin the agent installed, for `pod`."""
        return driver.Invocation(
            pod.container_id,
            pod.netns,
            "eth0",
            "",
            (mapping_from_option(f"{host_port}:{POD_PORT}"),),
            None,
            (str(self.dirs(node)["bin"]), "/usr/lib/cni"),
            str(self.home / node.name / "cache"),
            self.ns(node),
        )

    def add_pod(self, node: SimNode, role: str = "pod", host_port: int = HOST_PORT) -> SimPod:
        """A pod on the node through its agent's conflist and plugin, answering on port 80."""
        pod = Pod(
            self.netns(f"{node.name}-{role}"), f"{self.tag}-{node.name}-{secrets.token_hex(4)}"
        )
        result = driver.add(
            driver.Conflist(self.conflist_path(node).read_bytes()),
            self.invocation(node, pod, host_port),
        )
        found = SimPod(
            node,
            pod,
            {
                ipaddress.ip_interface(ip["address"]).version: str(
                    ipaddress.ip_interface(ip["address"]).ip
                )
                for ip in result["ips"]
            },
        )
        self.serve(pod.name, "tcp", POD_PORT, node.name)
        self.serve(pod.name, "udp", POD_PORT, node.name)
        self.pods[node.name] = found
        return found

    def delete_pod(self, found: SimPod, host_port: int = HOST_PORT) -> None:
        """The pod's DEL, through its node's conflist and plugin, as its runtime calls it."""
        driver.delete(
            driver.Conflist(self.conflist_path(found.node).read_bytes()),
            self.invocation(found.node, found.pod, host_port),
        )

    # what a node routes

    def peer_routes(self, node: SimNode) -> set[str]:
        """The destinations of netc's routes on a node (protocol 78): its peers' subnets."""
        return {r["dst"] for r in self.ip_json(node, "-4", "route", "show", "proto", "78")}

    def flow(self, source: SimPod, target: SimPod) -> subprocess.Popen:
        """A steady UDP flow from one pod to another, until `flow_result`."""
        process = self.spawn(
            source.pod.name,
            sys.executable,
            "-m",
            "tests.kernel.netprobe",
            "flow",
            target.addresses[4],
            str(POD_PORT),
            "--rate",
            "100",
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return process

    def lossless(self, source: SimPod, target: SimPod, during: Callable[[], object]) -> None:
        """`during()` while a flow runs from one pod to another: not one datagram lost."""
        running = self.flow(source, target)
        during()
        sent, answered, _ = self.flow_result(running)
        assert sent > 0 and answered == sent, f"{sent - answered} of {sent} datagrams lost"

    @staticmethod
    def flow_result(process: subprocess.Popen) -> tuple[int, int, int]:
        """(sent, answered, longest gap in ms) of a flow, which it stops."""
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        words = process.stdout.readline().split()
        process.wait(10)
        return int(words[1]), int(words[3]), int(words[5])


def assert_pods_reach_each_other(cluster: AgentCluster, pods: list[SimPod]) -> None:
    """Every pod answers every other, which sees its own address: no NAT on the way."""
    for source in pods:
        for target in pods:
            if source is not target:
                answer = cluster.ask(source.pod.name, "tcp", target.addresses[4], POD_PORT)
                assert answer == f"{target.node.name} {source.addresses[4]}"


def until(condition: Any, timeout: float = 30.0, step: float = 0.05) -> bool:
    """Whether `condition()` holds within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


class StaticAgentCluster(AgentCluster):
    """The simulated cluster with its nodes written in the source (membership static): no
    datastore, an agent per node, as the DaemonSet runs them (tests/rollout/test_on_nodes.py
    runs them through containerd)."""

    def __init__(self, tmp: Path, bin_dir: Path, nodes: tuple[SimNode, ...]) -> None:
        super().__init__(tmp, bin_dir, "host-gw")
        self.listed = list(nodes)

    def start_datastore(self) -> None:
        """None: the members are the source's nodes."""

    def source(self) -> str:
        return SimCluster.source(self)

    def agent_options(self, node: SimNode) -> list[str]:
        return []
