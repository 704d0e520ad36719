"""Simulated Kubernetes nodes that run netc's agent image through containerd's CRI.

Each node of the simulated cluster (tests/cluster/sim.py: namespaces on an
underlay switch, a client beside them) gets what a kubelet node has:

    containerd 1.6   in the node's network namespace, a PID namespace of its
                     own and a mount namespace of its own, where /etc, /opt
                     and /var/lib are overlays and /run a tmpfs of the node
                     (tests/runtimes/containerd.py, NODE_FILES)
    default paths    /etc/cni/net.d, /opt/cni/bin, /run/netc, /var/lib/cni,
                     /var/lib/netc, /run/xtables.lock: each node's own, at
                     the paths a real node has them -- never the machine's
    the agent pod    the DaemonSet's pod of `netc build --target kubernetes`,
                     run as the kubelet would (tests/rollout/kubelet.py)

Every node gets the same manifests -- one ConfigMap, the default paths --
as every node of a real cluster does.  A node may have no Python at all
(`no_python`): its plugin is the agent's shim alone.  Workload pods are CRI
sandboxes of a busybox image that serves HTTP on port 80
(tests/runtimes/images.py).  The test reads and runs what is on a node
inside the node's namespaces (`in_node`), never through the machine's paths.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import yaml

from compiler import kubernetes
from runtime.install import netc_command
from tests.cluster.sim import CLUSTER, SimCluster, SimNode
from tests.rollout import kubelet
from tests.runtimes.containerd import Containerd
from tests.runtimes.host import CgroupTree
from tests.runtimes.images import docker_archive
from tests.runtimes.network import page
from tests.support import ROOT

AGENT_IMAGE = "localhost/netc-agent:test"
SANDBOX_IMAGE = "localhost/netc-pause:rollout"
LOOPBACK = Path("/usr/lib/cni/loopback")
CONF_DIR = "/etc/cni/net.d"
BIN_DIR = "/opt/cni/bin"
SOCKET = "/run/netc/cni.sock"
READY_TIMEOUT = 60.0
STOP_GRACE = 10
INTERVAL = 1
"""The agents' drift repair, every second (a real node's: every minute)."""


class RolloutCluster(SimCluster):
    """The simulated cluster, its network with host ports, bandwidth and a given MTU."""

    def __init__(self, tmp: Path, nodes: tuple[SimNode, ...]) -> None:
        self.mtu = 1500
        self.priority = 10
        # no bin dir: pods here go through containerd and the plugin the agents install
        super().__init__(tmp, tmp / "no-bin-dir", "host-gw", False, nodes)

    def source(self) -> str:
        nodes = "".join(
            f"    node {n.name} {{ address {n.address}/24; block {n.block} }}\n"
            for n in self.listed
        )
        return (
            f"cluster {CLUSTER} {{\n    pod-cidr 10.244.0.0/16\n    node-block /24\n"
            f"    routing host-gw\n{nodes}}}\n\n"
            f"network pods {{\n    priority {self.priority}\n"
            f"    bridge cni0 {{ mtu {self.mtu}; gateway; masquerade }}\n"
            f"    ipam {{ cluster {CLUSTER}; route 0.0.0.0/0 }}\n"
            "    hostport\n    bandwidth\n}\n"
        )


class AgentNode:
    """One node: its containerd, its own files, the agent pod and workload pods."""

    def __init__(
        self, cluster: RolloutCluster, node: SimNode, images: list[Path], *, no_python: bool = False
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.netns = cluster.ns(node)
        # short: a unix socket's path holds at most 107 bytes, pytest's are long
        self.root = Path(tempfile.mkdtemp(prefix=f"netc-{node.name}-"))
        self.logs = self.root / "logs"
        self.config = kubelet.ConfigVolume(self.root / "config")
        self.cgroups = CgroupTree(f"{cluster.tag}-{node.name}")
        node_bin = self.root / "files" / "_opt_cni" / "bin"
        node_bin.mkdir(parents=True)
        (node_bin / "loopback").symlink_to(LOOPBACK)  # the node's own plugins
        self.containerd = Containerd(
            self.netns,
            Path(CONF_DIR),
            Path(BIN_DIR),
            SANDBOX_IMAGE,
            self.cgroups,
            own_pids=True,
            node_files=self.root,
            no_python=no_python,
        )
        self.agent_pod: str | None = None
        self.agent: str | None = None
        self.starts = 0
        try:
            self.cri = self.containerd.start(network_ready=False)
            for image in images:
                self.containerd.ctr("images", "import", str(image))
            self.publish()
        except BaseException:
            self.close()
            raise

    # the configuration and the manifests, as `netc build --target kubernetes` makes them

    def manifests(self) -> list[dict[str, Any]]:
        """The Namespace, ConfigMap and DaemonSet: every node's, the default paths."""
        compiled = self.cluster.compiled(self.node)
        rollout = kubernetes.Rollout(AGENT_IMAGE, "Never", interval=INTERVAL)
        documents = kubernetes.manifests(compiled.clusters, compiled.networks, rollout)
        # through the YAML an admin applies, so what runs is what `kubectl apply` reads
        return list(yaml.safe_load_all(kubernetes.render_manifests(documents)))

    def document(self, kind: str) -> dict[str, Any]:
        return next(d for d in self.manifests() if d["kind"] == kind)

    def publish(self) -> None:
        """The ConfigMap's current data into the mounted volume (the kubelet's swap)."""
        self.config.write(self.document("ConfigMap")["data"])

    # the node's files and programs, in its namespaces

    def in_node(
        self, *command: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        """`command` on the node: its network and mount namespaces."""
        return self.containerd.in_node(*command, stdin=stdin, check=check)

    def read(self, path: str) -> bytes | None:
        """A file of the node, or None if it has none there."""
        done = self.in_node("cat", path, check=False)
        return done.stdout if done.returncode == 0 else None

    def netc(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        """`netc ...` of this checkout run on the node (which must have Python)."""
        return self.in_node(*netc_command(sys.executable, [str(ROOT)]), *arguments, check=check)

    # the agent's pod

    def start_agent(self, daemon_set: dict[str, Any] | None = None, *, wait: bool = True) -> float:
        """Run the DaemonSet's pod (a new container in the same sandbox after the first);
        the seconds from StartContainer's return to ready (`wait` False: 0, at once).

        `daemon_set`: another DaemonSet than the manifests' (one capability less, say).
        """
        spec = kubelet.PodSpec.of(daemon_set or self.document("DaemonSet"))
        sandbox = kubelet.sandbox_config(
            spec, f"netc-node-{self.node.name}", "netc-system", self.logs, self.cgroups.parent
        )
        if self.agent_pod is None:
            self.agent_pod = self.cri.run_sandbox(sandbox)
        if self.agent is not None:
            self.cri.remove_container(self.agent)
        volumes = {"netc-config": self.config.directory}
        config = kubelet.container_config(
            spec, self.node.name, volumes, f"agent/{self.starts}.log", self.in_node
        )
        self.starts += 1
        self.agent = self.cri.run_container(self.agent_pod, config, sandbox)
        started = time.monotonic()
        if wait and not self.cluster.wait_for(self.ready, READY_TIMEOUT):
            raise AssertionError(
                f"the agent on {self.node.name} is not ready: {self.readiness()}\n{self.log()}"
            )
        return time.monotonic() - started

    def stop_agent(self) -> int:
        """StopContainer (SIGTERM, the pod's grace period); the agent's exit code."""
        assert self.agent is not None
        self.cri.stop_container(self.agent, STOP_GRACE)
        return self.cri.container(self.agent).exit_code

    def readiness(self) -> tuple[int, str]:
        """GET 127.0.0.1:9943/readyz in the node, as the readiness probe does."""
        done = self.cluster.run(
            self.netns,
            "curl",
            "-s",
            "-o",
            "/dev/stdout",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "2",
            f"http://127.0.0.1:{kubernetes.HEALTH_PORT}/readyz",
            check=False,
        )
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body.strip()

    def ready(self) -> bool:
        return self.readiness()[0] == 200

    def container_log(self, start: int) -> str:
        """What the agent's container of the `start`th start (from 0) wrote."""
        return kubelet.container_log(self.logs / "agent" / f"{start}.log")

    def log(self) -> str:
        """Everything the agent containers of this node wrote, oldest first."""
        return "".join(self.container_log(n) for n in range(self.starts))

    def wait_log_count(self, text: str, count: int, timeout: float = 20) -> bool:
        """Whether `text` appears `count` times in the log within `timeout` seconds."""
        return self.cluster.wait_for(lambda: self.log().count(text) >= count, timeout)

    # what the agent leaves on the node

    def conflists(self) -> dict[str, dict[str, Any]]:
        """The conflists in the node's CNI conf dir, by file name."""
        names = self.in_node("ls", "-A", CONF_DIR).stdout.decode().split()
        found = {name: self.read(f"{CONF_DIR}/{name}") for name in sorted(names) if ".conf" in name}
        return {name: json.loads(text) for name, text in found.items() if text is not None}

    # workload pods

    def run_pod(self, name: str, host_port: int, annotations: dict[str, str]) -> str:
        """A workload pod through CRI; its sandbox ID."""
        return self.cri.run_pod(
            name,
            "default",
            host_port=host_port,
            container_port=80,
            annotations=annotations,
            cgroup_parent=self.cgroups.parent,
        )

    def pod_address(self, pod: str) -> str:
        return self.cri.status(pod)[0].network.ip

    def pod_netns(self, pod: str) -> str:
        """The pod's network namespace name under /run/netns (containerd's cni-...)."""
        return self.cri.netns(pod).name

    def remove_pod(self, pod: str) -> None:
        """StopPodSandbox and RemovePodSandbox (CNI DEL, twice)."""
        self.cri.stop(pod)
        self.cri.remove(pod)

    def close(self) -> None:
        """Every pod and the daemon (its PID namespace with it), then the directories."""
        self._remove_pods_with_a_working_agent()
        self.containerd.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_pods_with_a_working_agent(self) -> None:
        """The pods a test left, removed while the manifests' agent serves their DELs.

        containerd keeps a sandbox whose network could not be torn down (its
        ADD refused while the agent was stopped or crippled, and the DEL after
        it too), and its network namespace with it, until a later DEL
        succeeds -- on a node, the kubelet's once the agent is back.  Removed
        by the daemon's own clean-up with no agent serving, they would stay in
        the machine's /run/netns.
        """
        cri = getattr(self, "cri", None)  # None: the daemon never started
        if cri is None:
            return
        try:
            left = [pod for pod in cri.pods() if pod != self.agent_pod]
            if left:
                self.start_agent()
                for pod in left:
                    self.remove_pod(pod)
        except (AssertionError, grpc.RpcError) as error:  # the clean-up tried; the test stands
            print(f"pods left on the node not removed: {error}", file=sys.stderr)


def pause_image(directory: Path, cluster: RolloutCluster) -> Path:
    """The workload pods' image: busybox httpd serving the lab's page."""
    return docker_archive(directory / "pause.tar", SANDBOX_IMAGE, page(cluster))
