"""The node agent (`netc agent`): what the DaemonSet runs on every node.

It reads its node's name (the downward API's `spec.nodeName`) and the
compiled configuration (the mounted ConfigMap), then, in this order:

    1  installs netc-cni into the host's CNI bin dir (temporary file, rename:
       a runtime may be executing the old one -- "text file busy")
    2  applies the node's node-scoped plan (`runtime.apply`)
    3  starts the warm server (`netc serve-cni`), which hands pods' calls
       to preloaded children
    4  writes the node's conflists last (temporary file, fsync, rename) and
       removes those netc wrote before and no longer builds, never others'

and then re-applies when the configuration changes, and every `interval`
seconds (drift repair), logging each change.  It is ready (GET /readyz on
localhost) once all four are done; a node missing from the configuration,
or a configuration it cannot read, is an error: it stays not ready and
writes no conflist.  On SIGTERM it stops the server and leaves the plugin
and the conflists in place, so pods keep being attached and detached (cold)
while it restarts (cilium#24009).

Steps 1, 2 and 4 run in a forked child that first enters the host's mount
namespace (`--host-mount-ns`, /proc/1/ns/mnt with hostPID): the node's own
iptables, conntrack and /proc/sys are used, as the plugin itself uses them
on the host -- one iptables backend for pods and nodes, never the image's.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from compiler import emit, kubernetes
from compiler.cluster import networks_for_node
from compiler.datatypes import frozen
from compiler.errors import NetcError
from compiler.ir import Cluster, Network
from compiler.planner.node import node_plan
from runtime import outdir
from runtime.apply import apply_node
from runtime.files import write_atomically
from runtime.install import package_root
from runtime.netns import CLONE_NEWNS, enter

PLUGIN_NAME = "netc-cni"


@frozen
class Options:
    """How the DaemonSet's container runs the agent (see compiler/kubernetes.py)."""

    config: str
    node: str
    cni_conf_dir: str
    cni_bin_dir: str
    plugin: str
    """The plugin artifact to install (the image ships it; `netc artifact` builds one)."""
    socket: str = "/run/netc/cni.sock"
    interval: float = 60.0
    poll: float = 1.0
    health_port: int | None = kubernetes.HEALTH_PORT
    host_mount_ns: str | None = None
    node_netns: str | None = None


def log(message: str) -> None:
    """One line on stderr, which the container's log collects."""
    print(f"netc agent: {message}", file=sys.stderr, flush=True)


class Agent:
    """The agent's state: the configuration it applied, the server, readiness."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.applied: str | None = None
        self.ready = False
        self.problem = "starting"
        self.server: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()

    def run(self) -> int:
        """Converge, then keep converging until SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        if self.options.health_port:
            _serve_health(self, self.options.health_port)
        last = 0.0
        while not self.stopping.is_set():
            digest = _digest(self.options.config)
            due = time.monotonic() - last >= self.options.interval
            if digest != self.applied or due or self._server_gone():
                self.converge(digest)
                last = time.monotonic()
            self.stopping.wait(self.options.poll)
        self._stop_server()
        log("stopped; the plugin and the conflists stay, pods attach through the cold path")
        return 0

    def converge(self, digest: str | None) -> None:
        """Steps 1-4 (1 and 3 only when needed); any failure leaves the agent not ready."""
        try:
            clusters, networks = _read(self.options.config)
            built = networks_for_node(networks, clusters, self.options.node)
            cluster = next((c for c in clusters if c.node(self.options.node)), None)
            if cluster is None and any(n.ipam and n.ipam.cluster for n in networks):
                raise NetcError(f"node {self.options.node} is in none of the clusters of "
                                f"{self.options.config}")
            first = self.applied is None
            report = _in_host(self.options, lambda: _install_and_apply(
                self.options, cluster, built, install=first))
            _log_report(report)
            if self.server is None or self.server.poll() is not None:
                self._start_server()
            _log_report(_in_host(self.options, lambda: _write_conflists(self.options, built)))
        except (NetcError, OSError, ValueError) as error:
            self.ready, self.problem = False, str(error)
            log(f"not ready: {error}")
            return
        self.applied, self.ready, self.problem = digest, True, ""

    def _server_gone(self) -> bool:
        return self.server is not None and self.server.poll() is not None

    def _start_server(self) -> None:
        start = (f"import sys; sys.path.append({package_root()!r}); "
                 "from runtime.cli import main; main()")
        command = [sys.executable, "-c", start, "serve-cni", "--socket", self.options.socket]
        self.server = subprocess.Popen(command)
        log(f"warm server started (process {self.server.pid}, socket {self.options.socket})")

    def _stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _read(path: str) -> tuple[list[Cluster], list[Network]]:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as error:
        raise NetcError(f"cannot read the configuration {path}: {error}") from error
    return kubernetes.read_config(document)


def _install_and_apply(options: Options, cluster: Cluster | None, networks: Sequence[Network],
                       *, install: bool) -> list[str]:
    lines = [f"installed {install_plugin(options)}"] if install else []
    plan = node_plan(cluster, options.node, networks)
    for change in apply_node(plan, networks, options.node_netns):
        lines += [f"applied {line}" for line in change.lines()]
    return lines


def install_plugin(options: Options) -> str:
    """The plugin artifact into the CNI bin dir, by rename: never rewritten in place."""
    with open(options.plugin, "rb") as handle:
        content = handle.read()
    target = os.path.join(options.cni_bin_dir, PLUGIN_NAME)
    os.makedirs(options.cni_bin_dir, exist_ok=True)
    write_atomically(target, content, durable=True, mode=0o755)
    return target


def _write_conflists(options: Options, networks: Sequence[Network]) -> list[str]:
    outputs = {emit.file_name(n): outdir.Output(n.name, emit.render(emit.conflist(n, "netc")))
               for n in networks}
    plan = outdir.plan_directory(options.cni_conf_dir, outputs)
    outdir.carry_out(options.cni_conf_dir, plan)
    verbs = {outdir.Action.WRITE: "wrote", outdir.Action.REMOVE: "removed stale",
             outdir.Action.EDITED: "left edited"}
    return [f"{verbs[c.action]} {os.path.join(options.cni_conf_dir, c.name)}"
            for c in plan.changes if c.action in verbs]


def _log_report(lines: Sequence[str]) -> None:
    for line in lines:
        log(line)


def _in_host(options: Options, work: Callable[[], list[str]]) -> list[str]:
    """`work` in a child that entered the host's mount namespace; its log lines, or its error.

    Without `host_mount_ns` (the agent runs on the node itself) it runs here.
    """
    if options.host_mount_ns is None:
        return work()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome travels through the pipe
        os.close(reader)
        _child(writer, options.host_mount_ns, work)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        outcome: dict[str, Any] = json.loads(pipe.read() or b'{"error": "no answer"}')
    os.waitpid(child, 0)
    if "error" in outcome:
        raise NetcError(outcome["error"])
    return list(outcome["lines"])


def _child(writer: int, mount_ns: str, work: Callable[[], list[str]]) -> None:
    """Enter the host's mount namespace, work, send the outcome, and never return."""
    outcome: dict[str, Any] = {"error": "the child failed"}
    try:
        fd = os.open(mount_ns, os.O_RDONLY)
        enter(fd, CLONE_NEWNS)
        os.close(fd)
        outcome = {"lines": work()}
    except BaseException as error:  # everything goes back to the parent, nothing escapes
        outcome = {"error": f"{type(error).__name__}: {error}"}
        traceback.print_exc()
    finally:
        try:
            os.write(writer, json.dumps(outcome).encode())
        finally:
            os._exit(0 if "lines" in outcome else 1)


def _serve_health(agent: Agent, port: int) -> None:
    """GET /readyz: 200 once converged, 503 with the reason; /healthz: 200 while running."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = agent.ready if self.path == "/readyz" else self.path == "/healthz"
            body = b"ok\n" if ok else f"{agent.problem or 'not found'}\n".encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Probes every few seconds would drown the log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
