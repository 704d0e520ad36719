"""A private containerd 1.6 with its CRI plugin, and a small CRI client.

The daemon runs in the lab's node namespace (the CRI plugin runs the CNI
plugins itself, so it must sit where the pods' host side lives), with a
config of its own: root, state and sockets in a short directory in /tmp --
unix socket paths hold at most 107 bytes, pytest's tmp paths are long --, the
CNI conf_dir holding netc's conflist, and one bin_dir (containerd 1.6 takes
only one) holding netc-cni next to the reference plugins: the CRI plugin
runs `loopback` itself before the conflist.

libcni caches each pod's result in /var/lib/cni/results, which containerd's
CRI config cannot move: with `own_var_lib` the daemon (its shims and the
plugins it runs) sees /var/lib through an overlay whose writes land in its
work directory, so the cache is the test's and the host's /var/lib is never
written.

Stopping it follows real-clients.md: pod sandboxes go first (their shims
exit with them), then the daemon by PID, then whatever shim or pod process
of *this* daemon is left -- a shim names the daemon's socket on its command
line, pod processes sit in the test's cgroups.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2 as cri
from cri_api.v1.api_pb2_grpc import RuntimeServiceStub

from tests.runtimes.host import (
    NODE_PATH,
    CgroupTree,
    children,
    in_netns,
    kill,
    processes_naming,
    stop,
    unmount_below,
)

CONFIG = """\
version = 2
root = "{work}/root"
state = "{work}/state"
[grpc]
  address = "{work}/containerd.sock"
[ttrpc]
  address = "{work}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{work}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""

START_TIMEOUT = 15.0
OWN_VAR_LIB = """\
set -e
mount --make-slave "$(findmnt -n -o TARGET -T /var/lib)"
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$1/upper,workdir=$1/work" /var/lib
shift
exec "$@"
"""
"""Run the rest of the command line with /var/lib an overlay whose writes go to $1/upper.

The mount holding /var/lib becomes a slave first: were it shared, the overlay
would propagate to the host's mount namespace."""
NODE_FILES = """\
set -e
node=$1
shift
for point in /etc /opt /var/lib /run; do
    mount --make-slave "$(findmnt -n -o TARGET -T "$point")"
done
for point in /etc /opt /var/lib; do
    layer="$node/files/$(echo "$point" | tr / _)"
    mount -t overlay overlay -o "lowerdir=$point,upperdir=$layer/upper,workdir=$layer/work" \
        "$point"
done
for point in /etc/cni /opt/cni /var/lib/cni /var/lib/netc; do
    own="$node/files/$(echo "$point" | tr / _)"
    mkdir -p "$own" "$point"
    mount --bind "$own" "$point"
done
mkdir -p "$node/netns-aside"
mount --rbind /run/netns "$node/netns-aside"
mount -t tmpfs -o mode=0755 node-run /run
mkdir /run/netns
mount --move "$node/netns-aside" /run/netns
if [ "$NO_PYTHON" = 1 ]; then
    for python in /usr/bin/python3* /usr/local/bin/python3* /bin/python3*; do
        if [ -e "$python" ]; then mount --bind /dev/null "$python"; fi
    done
fi
exec "$@"
"""
"""Run the rest of the command line with a node's own /etc, /opt, /var/lib and /run.

Overlays whose writes land in $1/files, and over them directories of the node's own, empty at
first, at /etc/cni, /opt/cni, /var/lib/cni and /var/lib/netc (the paths a real node has them:
nothing of the machine's shows through), and a tmpfs over /run
(the node's /run/netc and /run/xtables.lock) that keeps /run/netns, a mount shared with the
test's namespace: bound aside, the tmpfs mounted, moved back -- the pods' namespaces
containerd mounts there reach the test, as on a node.  The mounts holding the four paths
become slaves first, so nothing mounted here reaches the host's mount namespace, were they
shared.  NO_PYTHON=1: every python3 of /usr/bin, /usr/local/bin and /bin is /dev/null here,
a node without Python."""


class Containerd:
    """The daemon: started in the node, stopped by its PID, with everything it left."""

    def __init__(
        self,
        node: str,
        conf_dir: Path,
        bin_dir: Path,
        sandbox_image: str,
        cgroups: CgroupTree,
        *,
        own_pids: bool = False,
        own_var_lib: bool = False,
        node_files: Path | None = None,
        no_python: bool = False,
    ) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="netc-ctrd-"))
        self.node = node
        self.cgroups = cgroups
        self.own_pids = own_pids
        """The daemon is PID 1 of a PID namespace of its own, the node's "host" PIDs as a
        hostPID pod sees them: /proc/1 is this containerd.  It gets a mount namespace of
        its own too, for a /proc that shows those PIDs (runc reads its children there);
        the mounts it makes stay there, but for /run/netns, a shared mount, so the
        test sees the pods' namespaces."""
        self.own_var_lib = own_var_lib
        self.node_files = node_files
        """A directory holding the node's own /etc, /opt, /var/lib and /run (`NODE_FILES`):
        the daemon, its shims and the plugins see the default paths as a node's own."""
        self.no_python = no_python
        self.socket = self.work / "containerd.sock"
        (self.work / "config.toml").write_text(
            CONFIG.format(
                work=self.work, sandbox_image=sandbox_image, bin_dir=bin_dir, conf_dir=conf_dir
            )
        )
        self.process: subprocess.Popen | None = None
        self.cri: Cri | None = None

    @property
    def var_lib(self) -> Path:
        """What the daemon wrote into /var/lib, when it has its own (`own_var_lib`)."""
        return self.work / "var-lib" / "upper"

    def cni_cache(self, network: str, pod: str, ifname: str = "eth0") -> Path:
        """libcni's cached result of a pod's attachment, in the daemon's own /var/lib."""
        return self.var_lib / "cni" / "results" / f"{network}-{pod}-{ifname}"

    def _var_lib_overlay(self) -> list[str]:
        """The command prefix that gives the daemon its own /var/lib (`OWN_VAR_LIB`), or its
        node's own files (`NODE_FILES`)."""
        if self.node_files is not None:
            for point in ("_etc", "_opt", "_var_lib"):
                for part in ("upper", "work"):
                    (self.node_files / "files" / point / part).mkdir(parents=True, exist_ok=True)
            return [
                "unshare",
                "--mount",
                "--propagation",
                "unchanged",
                "sh",
                "-c",
                NODE_FILES,
                "sh",
                str(self.node_files),
            ]
        if not self.own_var_lib:
            return []
        base = self.var_lib.parent
        for part in ("upper", "work"):
            (base / part).mkdir(parents=True, exist_ok=True)
        return [
            "unshare",
            "--mount",
            "--propagation",
            "unchanged",
            "sh",
            "-c",
            OWN_VAR_LIB,
            "sh",
            str(base),
        ]

    @property
    def log(self) -> str:
        """The daemon's log so far (for failure messages)."""
        path = self.work / "containerd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, *, network_ready: bool = True) -> Cri:
        """Start the daemon and wait for its CRI; and until it reports the network ready.

        Its environment is a node's (PATH only), not the test runner's: the
        CNI plugins inherit it.  `network_ready` False: a node whose network
        plugin is still to come (an agent writes its conflist later).
        """
        pids = (
            [
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "unchanged",
            ]
            if self.own_pids
            else []
        )
        with open(self.work / "containerd.log", "w") as log:
            self.process = subprocess.Popen(
                [
                    *in_netns(self.node),
                    *pids,
                    *self._var_lib_overlay(),
                    "containerd",
                    "--config",
                    str(self.work / "config.toml"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": NODE_PATH, **({"NO_PYTHON": "1"} if self.no_python else {})},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.socket.exists():
            self._alive_before(deadline)
        self.cri = Cri(self.socket)
        while not (self.cri.network_ready() if network_ready else self.cri.status_answers()):
            self._alive_before(deadline)
        return self.cri

    def _alive_before(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"containerd did not get ready:\n{self.log[-3000:]}")
        time.sleep(0.05)

    @property
    def pid(self) -> int:
        """The daemon's PID, whose mount namespace is the node's (where hostPaths are)."""
        assert self.process is not None
        found = children(self.process.pid) if self.own_pids else [self.process.pid]
        assert len(found) == 1, found
        return found[0]

    def in_node(
        self, *command: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        """`command` in the node's network, mount and PID namespaces, as a program on the node.

        The PID namespace too: the node's /proc is its own (`--mount-proc`), where a
        process of another PID namespace has no /proc/self.
        """
        namespaces = [
            f"--{kind}=/proc/{self.pid}/ns/{name}"
            for kind, name in (("mount", "mnt"), ("pid", "pid"))
        ]
        done = subprocess.run(
            [*in_netns(self.node), *namespaces, *command],
            input=stdin,
            capture_output=True,
            check=False,
            timeout=120,
            env={"PATH": NODE_PATH},
        )
        assert not check or done.returncode == 0, done.stderr.decode(errors="replace")
        return done

    def ctr(self, *args: str) -> str:
        """`ctr` against this daemon, in the CRI plugin's namespace k8s.io."""
        done = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, f"ctr {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    def close(self) -> None:
        """Remove the pods, stop the daemon, then anything of it still running or mounted."""
        if self.cri is not None:
            self.cri.remove_all()
            self.cri.close()
            self.cri = None
        if self.process is not None:
            if self.own_pids:  # unshare ignores SIGTERM: ask its child, the daemon
                for pid in children(self.process.pid):
                    kill(pid, signal.SIGTERM)
            stop(self.process)  # killing unshare kills the daemon and its PID namespace
            self.process = None
        for pid in processes_naming(str(self.work)):
            kill(pid, signal.SIGKILL)
        self.cgroups.remove()
        unmount_below(self.work)
        shutil.rmtree(self.work, ignore_errors=True)


class Cri:
    """The few CRI RuntimeService calls the tests make (what crictl would do)."""

    def __init__(self, socket: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime = RuntimeServiceStub(self.channel)

    def close(self) -> None:
        """Close the gRPC channel."""
        self.channel.close()

    def status_answers(self) -> bool:
        """Whether the CRI plugin answers Status (it is serving)."""
        try:
            self.runtime.Status(cri.StatusRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return True

    def network_ready(self) -> bool:
        """Whether the CRI plugin has loaded a CNI configuration (NetworkReady)."""
        try:
            status = self.runtime.Status(cri.StatusRequest(), timeout=2).status
        except grpc.RpcError:
            return False
        return any(c.type == "NetworkReady" and c.status for c in status.conditions)

    def run_pod(
        self,
        name: str,
        namespace: str,
        *,
        host_port: int,
        container_port: int,
        annotations: dict[str, str],
        cgroup_parent: str,
    ) -> str:
        """RunPodSandbox with one TCP port mapping; the sandbox ID."""
        return self.run_sandbox(
            self.pod_config(
                name,
                namespace,
                host_port=host_port,
                container_port=container_port,
                annotations=annotations,
                cgroup_parent=cgroup_parent,
            )
        )

    @staticmethod
    def pod_config(
        name: str,
        namespace: str,
        *,
        host_port: int,
        container_port: int,
        annotations: dict[str, str],
        cgroup_parent: str,
    ) -> cri.PodSandboxConfig:
        """A pod sandbox's configuration with one TCP port mapping, as the kubelet sends it."""
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace=namespace, uid=str(uuid.uuid4())),
            hostname=name,
            port_mappings=[
                cri.PortMapping(
                    protocol=cri.TCP, container_port=container_port, host_port=host_port
                )
            ],
            annotations=annotations,
            linux=cri.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
        )

    def run_sandbox(self, config: cri.PodSandboxConfig) -> str:
        """RunPodSandbox (CNI ADD unless the pod shares the node's network); the sandbox ID."""
        return self.runtime.RunPodSandbox(
            cri.RunPodSandboxRequest(config=config), timeout=60
        ).pod_sandbox_id

    def run_container(
        self, pod: str, config: cri.ContainerConfig, sandbox: cri.PodSandboxConfig
    ) -> str:
        """CreateContainer then StartContainer, as the kubelet does; the container ID."""
        container = self.runtime.CreateContainer(
            cri.CreateContainerRequest(pod_sandbox_id=pod, config=config, sandbox_config=sandbox),
            timeout=60,
        ).container_id
        self.runtime.StartContainer(cri.StartContainerRequest(container_id=container), timeout=60)
        return container

    def stop_container(self, container: str, timeout: int) -> None:
        """StopContainer: SIGTERM, then SIGKILL after `timeout` seconds."""
        self.runtime.StopContainer(
            cri.StopContainerRequest(container_id=container, timeout=timeout), timeout=timeout + 30
        )

    def remove_container(self, container: str) -> None:
        """RemoveContainer."""
        self.runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=container), timeout=30)

    def container(self, container: str) -> cri.ContainerStatus:
        """ContainerStatus (state, exit code, reason)."""
        return self.runtime.ContainerStatus(
            cri.ContainerStatusRequest(container_id=container), timeout=10
        ).status

    def status(self, pod: str) -> tuple[cri.PodSandboxStatus, dict[str, Any]]:
        """PodSandboxStatus, verbose: the status and containerd's info document."""
        reply = self.runtime.PodSandboxStatus(
            cri.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True), timeout=10
        )
        return reply.status, json.loads(reply.info.get("info", "{}"))

    def netns(self, pod: str) -> Path:
        """The pod's network namespace, /var/run/netns/cni-..., from its verbose status."""
        _, info = self.status(pod)
        (path,) = [
            n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"] if n["type"] == "network"
        ]
        return Path(path)

    def stop(self, pod: str) -> None:
        """StopPodSandbox (CNI DEL)."""
        self.runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def remove(self, pod: str) -> None:
        """RemovePodSandbox (CNI DEL again)."""
        self.runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def pods(self) -> list[str]:
        """The IDs of every pod sandbox the daemon knows."""
        reply = self.runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10)
        return [item.id for item in reply.items]

    def remove_all(self) -> None:
        """Stop and remove every pod sandbox, whatever state a failed test left."""
        try:
            for pod in self.pods():
                for step in (self.stop, self.remove):
                    try:
                        step(pod)
                    except grpc.RpcError:
                        continue
        except grpc.RpcError:
            return
