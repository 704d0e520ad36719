"""What the attach suite compares: one network, attached by netc and by the stock plugins.

One attachment is what a runtime does for a pod sandbox on a bridge network:
a veth on the bridge, an address from IPAM, one hostPort, ingress and egress
shaping, and `lo` up.  netc does it in one plugin (the `--target netc`
conflist); the reference does it with bridge+host-local, portmap and
bandwidth.  Both sides also run the `loopback` plugin as its own list, the
way containerd 1.6 runs it for every sandbox whatever its network: beside
the pod network on ADD, before it on DEL (`Implementation.add`).  Both
conflists come from the same `.netdsl` source, and each runs on its own node
namespace, with its own state under the run's temp dir.

netc can also be measured in variants of how netc-cni starts -- another
interpreter for the launcher (`install-plugin --python`), a warm server
(`netc serve-cni`), or the plugin the node agent installs (the compiled
shim, and the artifact it runs cold), cold and warm -- which share the
netc node: same conflist, same state, only the launcher differs, so they
need no background pods of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from bench.beside import Beside
from bench.namespaces import Namespaces, netns_path
from bench.startup import full_import_code
from compiler import emit
from compiler.pipeline import compile_sources
from compiler.planner.context import bandwidth_from_option, mapping_from_option
from compiler.source import SourceFile
from runtime import driver
from runtime.agent import install_plugin, plugin_files
from runtime.artifact import INTERPRETERS
from runtime.install import install, netc_command, package_root
from runtime.packaging import DEPENDENCIES, PYTHON, module_dir
from tests.membership.agents import until

NETWORK = """
network benchnet {{
    state-dir "{state}"
    bridge nb-br0 {{
        gateway
        masquerade
        hairpin
    }}
    ipam {{
        subnet 10.78.0.0/{prefix}
        route 0.0.0.0/0
        data-dir "{data}"
    }}
    hostport
    bandwidth
}}
"""

LOOPBACK = {"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}
"""containerd's separate loopback network (go-cni's default `lo` config)."""

LISTS = "at once on ADD, in order on DEL"
"""How a sandbox's lists are called (`Implementation.add`, `.delete`), as the results say;
results before 2026-12-07 called them one after the other, in reverse on DEL."""

NODE_ENTRY = "nsenter"
"""How the harness runs a plugin in a node (`runtime.driver.NODE_ENTRIES`): in its network
namespace alone, as a runtime starts plugins on a node; results before 2026-12-07 00:48 UTC
ran them through `ip netns exec`."""

BANDWIDTH = "ingress=20M,egress=20M"
REFERENCE = "reference"
NETC = "netc"
AGENT, AGENT_WARM = f"{NETC}-agent", f"{NETC}-agent-warm"
"""netc-cni as the node agent installs it, with no server answering (cold) and with one."""
VARIANTS = ("py3", "warm", "agent")
"""netc-py3: launcher on another interpreter; netc-warm: that launcher hands calls to
`netc serve-cni`; agent: the plugin the node agent installs (the shim), cold and warm."""
SERVER_START_TIMEOUT = 30.0
SETTLE_WAIT = 10.0
"""Seconds the harness waits for a warm server to finish a call's after-work (`settle`)."""
SETTLE_STEP = 0.0005
REFERENCE_PROBE = "/usr/lib/cni/bridge"
"""Every reference plugin is a static Go binary of about this size."""
WARM_IMPORTS = "import os, sys, _socket, _struct"
"""What a warm launcher imports before handing the call over."""


@dataclass(frozen=True)
class Pod:
    """A sandbox: its namespace, its container ID and the host port it maps to 80."""

    netns: str
    container_id: str
    host_port: int


@dataclass(frozen=True)
class Implementation:
    """One way of attaching pods: its node, its conflists in ADD order, its plugin path.

    `probe` is a command whose start-up stands for one of its plugin execs
    (see `bench.attach.wrapper_costs`).  `owns_node` is false for netc
    variants, which borrow netc's node and pods.
    """

    name: str
    node: str
    conflists: tuple[driver.Conflist, ...]
    cni_path: tuple[str, ...]
    cache_dir: str
    probe: tuple[str, ...]
    owns_node: bool = True
    server: int | None = None
    """The PID of the warm server its calls are handed to (`settle`)."""
    stderr_log: str | None = None
    """Where the plugins' stderr goes (the load suite reads netc's lock waits there)."""

    @property
    def handing_over(self) -> tuple[str, ...] | None:
        """For a netc-cni that hands calls to a warm server, the plugin itself, whose call
        with a command no plugin knows the server takes and answers with no work."""
        return (os.path.join(self.cni_path[0], "netc-cni"),) if self.server is not None else None

    @property
    def plugin_execs(self) -> int:
        """Plugins the driver execs per ADD or DEL (host-local is exec'd by bridge itself)."""
        return sum(len(conflist.plugins) for conflist in self.conflists)

    @property
    def loopback_execs(self) -> int:
        """Of those, the loopback plugin's (containerd's own list)."""
        return sum(
            1
            for conflist in self.conflists
            for plugin in conflist.plugins
            if plugin.get("type") == "loopback"
        )

    def invocation(self, pod: Pod, ifname: str = "eth0") -> driver.Invocation:
        """What a runtime passes for `pod`: one hostPort and explicit rates."""
        return driver.Invocation(
            pod.container_id,
            netns_path(pod.netns),
            ifname,
            port_mappings=(mapping_from_option(f"{pod.host_port}:80"),),
            bandwidth=bandwidth_from_option(BANDWIDTH),
            cni_path=self.cni_path,
            cache_dir=self.cache_dir,
            node_netns=self.node,
            node_entry=NODE_ENTRY,
            stderr_log=self.stderr_log,
        )

    def add(self, pod: Pod, beside: Beside | None = None) -> dict[str, Any]:
        """ADD every list at once, as containerd 1.6 does (go-cni attaches a sandbox's networks
        in goroutines of their own); the pod network's result (the last list's), whose
        addresses the load suite checks for duplicates.

        With `beside`, the lists before the pod network's run in that process,
        the pod network's here; without, each list in a thread of its own
        (the load suite's callers, which are threads themselves).
        """
        *others, network = self.conflists
        if not others:
            return self._call(driver.add, pod, network)
        if beside is None:
            with ThreadPoolExecutor(len(self.conflists)) as lists:
                results: list[dict[str, Any]] = list(
                    lists.map(partial(self._call, driver.add, pod), self.conflists)
                )
            return results[-1]
        for conflist in others:
            beside.start(partial(driver.add, conflist, self._invocation(pod, conflist)))
        try:
            return self._call(driver.add, pod, network)
        finally:
            for _ in others:
                beside.result()

    def delete(self, pod: Pod) -> None:
        """DEL every list, one after the other in their order, loopback first, as containerd
        1.6 does (go-cni's Remove)."""
        for conflist in self.conflists:
            self._call(driver.delete, pod, conflist)

    def _call(
        self,
        command: Callable[[driver.Conflist, driver.Invocation], Any],
        pod: Pod,
        conflist: driver.Conflist,
    ) -> Any:
        """One list's call."""
        return command(conflist, self._invocation(pod, conflist))

    def _invocation(self, pod: Pod, conflist: driver.Conflist) -> driver.Invocation:
        """What a runtime passes for `pod` to a list: containerd names the interface `lo` for
        its loopback list."""
        return self.invocation(pod, "lo" if conflist.document == LOOPBACK else "eth0")

    def settle(self) -> None:
        """Wait, untimed, until what the last call left for after its answer is done.

        A warm server's call process answers first and goes on (a DEL's
        device deletion), and the server then forks the next spare, which
        copies pages: work on the machine's CPUs and under its rtnl lock
        that would land on the next sample, another implementation's.  Done
        when the server has one child, the spare, and both sleep.  Samples
        before 2026-12-07 08:00 UTC did not wait (docs/benchmarks.md).
        """
        if self.server is None:
            return
        if not until(partial(server_idle, self.server), SETTLE_WAIT, step=SETTLE_STEP):
            raise RuntimeError(
                f"the warm server {self.server} was still busy after {SETTLE_WAIT} s"
            )

    def nat_rules(self) -> int:
        """Rules in the node's nat table: the state portmap and masquerading scale with."""
        saved = subprocess.run(
            ["ip", "netns", "exec", self.node, "iptables-save", "-t", "nat"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sum(1 for line in saved.splitlines() if line.startswith("-A"))

    def with_launcher(
        self, name: str, bin_dir: Path, probe: tuple[str, ...], server: Server | None = None
    ) -> Implementation:
        """A variant on this node whose netc-cni is the launcher in `bin_dir` (with `server`:
        it hands calls to that server)."""
        return replace(
            self,
            name=name,
            cni_path=(str(bin_dir), *self.cni_path),
            probe=probe,
            owns_node=False,
            server=server.pid if server else None,
        )


@dataclass(frozen=True)
class Server:
    """A `netc serve-cni` of the bench: where it listens, and its PID."""

    socket: Path
    pid: int


def server_idle(pid: int) -> bool:
    """Whether the server `pid` and its one child (the spare) both sleep, no call running."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            spares = children.read().split()
        return len(spares) == 1 and all(_sleeping(int(each)) for each in (pid, *spares))
    except OSError:
        return False


def _sleeping(pid: int) -> bool:
    """Whether the process is in an interruptible sleep (state S of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rpartition(b")")[2].split()[0] == b"S"


def subnet_prefix(pods: int) -> int:
    """The longest IPv4 prefix (at most /24) with room for `pods`, a sample and the gateway."""
    return min(24, 32 - (pods + 3).bit_length())


def conflist(text: str, target: str) -> driver.Conflist:
    """Compile `.netdsl` text for a target, as `netc build` would."""
    compilation = compile_sources([SourceFile("bench.netdsl", text)])
    if not compilation.ok:
        raise RuntimeError(f"bench network does not compile: {compilation.diagnostics}")
    (network,) = compilation.networks
    return driver.Conflist(emit.render(emit.conflist(network, target)).encode())


def python_probe(python: str, code: str) -> tuple[str, ...]:
    """A Python launcher's start-up: its interpreter running what it imports."""
    return (python, "-IS", "-c", code)


RUNTIME_STATE = "run"
"""The bench's directory below which netc's state-dirs live: a link to a tmpfs, as a node's
/run/netc is one (bench/__main__.py makes it); IPAM data stays on disk for both sides."""


def on_node(
    name: str, spaces: Namespaces, tmp: Path, pods: int, role: str | None = None
) -> Implementation:
    """netc or the reference on a node of its own: IPAM data under `tmp/<role>` (default:
    name), netc's state under `tmp/run/<role>`."""
    role = role or name
    home = tmp / role
    text = NETWORK.format(
        state=tmp / RUNTIME_STATE / role, data=home / "ipam", prefix=subnet_prefix(pods)
    )
    cni_path = (str(install(tmp / "bin").parent), *driver.DEFAULT_CNI_PATH)
    probe = (
        (REFERENCE_PROBE,)
        if name == REFERENCE
        else python_probe(sys.executable, full_import_code())
    )
    return Implementation(
        name,
        spaces.node(f"{role}-node"),
        sandbox_lists(text, name),
        cni_path,
        str(home / "cache"),
        probe,
    )


def sandbox_lists(text: str, target: str) -> tuple[driver.Conflist, ...]:
    """What a runtime runs for one pod sandbox, in order: containerd's loopback network, then
    the pod's network built for `target`.

    containerd's CRI (and CRI-O) run the loopback plugin for every sandbox,
    whatever the pod's network: both sides pay for it, as on a node.
    """
    return (driver.Conflist(json.dumps(LOOPBACK).encode()), conflist(text, target))


def other_python(netc: Implementation, tmp: Path, python: str) -> Implementation:
    """netc-cni launched by another interpreter (`netc install-plugin --python`)."""
    bin_dir = tmp / "bin-py3"
    install(bin_dir, python=python)
    return netc.with_launcher(f"{NETC}-py3", bin_dir, python_probe(python, full_import_code()))


@contextlib.contextmanager
def serving(netc: Implementation, tmp: Path) -> Iterator[Server]:
    """A `netc serve-cni` running in netc's node; stopped (by PID) after."""
    socket, log = tmp / f"{netc.node}.sock", server_log(netc, tmp)
    with log.open("w") as sink:
        server = subprocess.Popen(
            ["ip", "netns", "exec", netc.node, *server_command(socket)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        _wait_until_listening(server, log)
        yield Server(socket, server.pid)
    finally:
        server.kill()
        server.wait()


def server_command(socket: Path) -> list[str]:
    """`netc serve-cni --socket SOCKET` as a node's agent runs it.

    On the interpreter netc's image carries (`runtime.packaging.PYTHON`, the
    machine's Debian python3), with netc's packages and their dependencies
    -- the modules the image holds -- on its path.  Runs before 2026-12-07
    08:00 UTC ran it on the bench's own interpreter (docs/benchmarks.md).
    """
    dependencies = sorted({str(module_dir(name).parent) for name in DEPENDENCIES})
    netc = netc_command(str(PYTHON), [package_root(), *dependencies])
    return [*netc, "serve-cni", "--socket", str(socket)]


def server_log(netc: Implementation, tmp: Path) -> Path:
    """Where the `netc serve-cni` of netc's node logs (a line per call it takes over)."""
    return tmp / f"{netc.node}-serve-cni.log"


def warm(netc: Implementation, tmp: Path, python: str, server: Server) -> Implementation:
    """netc-cni handed to the `netc serve-cni` `server`.

    The launcher runs on `python`, the deployment docs/runtime.md recommends:
    with the plugin already loaded, the launcher's own start-up is what is left.
    """
    bin_dir = tmp / f"bin-warm-{netc.node}"
    install(bin_dir, python=python, warm_socket=str(server.socket))
    return netc.with_launcher(f"{NETC}-warm", bin_dir, python_probe(python, WARM_IMPORTS), server)


def agent_plugins(
    netc: Implementation, tmp: Path, server: Server | None, tag: str = ""
) -> list[Implementation]:
    """netc-cni as the node agent installs it (`runtime.agent.plugin_files`).

    The compiled shim, and beside it the cold file it runs while no server
    answers: the plugin artifact, on the node's python3.  netc-agent: no
    server answers (the agent is down), the shim runs the artifact;
    netc-agent-warm, given a `server`: the shim hands calls to it.  `tag`
    keeps the files of another node's server apart.
    """
    variants: list[tuple[str, Server | None]] = [(AGENT, None)]
    if server is not None:
        variants.append((AGENT_WARM, server))
    found = []
    for name, handed_to in variants:
        bin_dir = tmp / f"bin-{tag}{name}"
        listening = handed_to.socket if handed_to else tmp / "no-server.sock"
        for file, content in plugin_files(str(bin_dir), str(listening)):
            install_plugin(str(bin_dir), content, file)
        probe = (
            (str(bin_dir / "netc-cni"),)
            if handed_to
            else python_probe(INTERPRETERS[0], full_import_code())
        )
        found.append(netc.with_launcher(name, bin_dir, probe, handed_to))
    return found


def _wait_until_listening(server: subprocess.Popen, log: Path) -> None:
    """Return once the server says it listens; fail with its log if it dies or hangs."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while "listening" not in log.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"netc serve-cni did not start: {log.read_text().strip()}")
        time.sleep(0.05)
