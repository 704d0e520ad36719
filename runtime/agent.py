"""The node agent (`netc agent`): what the DaemonSet runs on every node.

It reads its node's name (the downward API's `spec.nodeName`) and the
compiled configuration (the mounted ConfigMap), then, in this order:

    1  installs netc-cni into the host's CNI bin dir (temporary file, rename:
       a runtime may be executing the old one -- "text file busy"): the
       compiled shim, which hands calls to the warm server, and its cold
       fallback, the plugin artifact built at start from the agent's own
       modules, so the shim and the server always agree (`plugin_files`)
    2  applies the node's node-scoped plan (`runtime.apply`)
    3  starts the warm server (`netc serve-cni`), which hands pods' calls
       to preloaded children, and waits until it listens
    4  writes the node's conflists last (temporary file, fsync, rename) and
       removes those netc wrote before and no longer builds, never others'

and then converges again when the configuration changes, and every
`interval` seconds (drift repair: a plugin, a route or a conflist someone
changed is put back), logging each change it makes.  It is ready (GET /readyz on
localhost) once all four are done; a node missing from the configuration,
or a configuration it cannot read, is an error: it stays not ready and
writes no conflist.  On SIGTERM it stops the server, removes its socket and
leaves the plugin and the conflists in place, so pods keep being attached and detached (cold)
while it restarts (cilium#24009).

The agent works in its own container: what it writes on the node is
mounted from the node at the same path (compiler/kubernetes.py) -- the CNI
conf and bin dirs, /run/netc, the networks' state and IPAM directories,
/run/xtables.lock --, the node's sysctls are its /proc/sys/net mounted at
/host/proc/sys/net (`--proc-sys`), and iptables is its image's, run with the
backend the node's other users chose (`choose_iptables`).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from typing import IO

from compiler import emit, kubernetes
from compiler.cluster import networks_for_node
from compiler.datatypes import frozen
from compiler.errors import NetcError
from compiler.ir import Cluster, Network
from compiler.planner.node import node_plan
from runtime import iptables, membership, outdir, shim
from runtime.apply import apply_node
from runtime.artifact import INTERPRETERS, plugin_artifact
from runtime.files import read_text, write_atomically
from runtime.host import PROC_SYS, use_proc_sys
from runtime.install import package_root
from runtime.ipam_store import IpamStore
from runtime.membership.follower import Follower, NotJoined
from runtime.netns import node_namespace

PLUGIN_NAME = "netc-cni"
SERVER_START = 20.0
"""Seconds the warm server may take to import the plugin and listen."""
RETRY = 5.0
"""Seconds before a failed converge is tried again (a change of the configuration: at once)."""


@frozen
class Options:
    """How the DaemonSet's container runs the agent (see compiler/kubernetes.py)."""

    config: str
    node: str
    cni_conf_dir: str
    cni_bin_dir: str
    socket: str = "/run/netc/cni.sock"
    """The warm server's socket; the installed plugin's launcher looks there."""
    interval: float = 60.0
    poll: float = 1.0
    health_port: int | None = kubernetes.HEALTH_PORT
    node_netns: str | None = None
    node_addresses: tuple[str, ...] = ()
    """The node's underlay addresses to publish in a dynamic cluster (default: those of the
    interface of its default route)."""
    memory_dir: str = "/var/lib/netc"
    """Where a dynamic cluster's block is remembered across restarts and reboots."""
    proc_sys: str = PROC_SYS
    """Where the node's sysctls are read and written: the container's /proc/sys is read-only,
    the DaemonSet mounts the node's /proc/sys/net at /host/proc/sys/net."""
    kubeconfig: str | None = None
    """The Kubernetes API of a cluster of Nodes, outside a pod (default: the pod's own)."""


def log(message: str) -> None:
    """One line on stderr, which the container's log collects.

    Written straight to the descriptor, in one write, so the lines of the
    agent's threads and of its warm server's relay never interleave.
    """
    os.write(2, f"netc agent: {message}\n".encode(errors="replace"))


class Agent:
    """The agent's state: the configuration it last tried, the server, readiness."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.attempted: str | None = None
        """The digest of the configuration the last converge read (None: unreadable)."""
        self.ready = False
        self.problem = "starting"
        self.server: subprocess.Popen[bytes] | None = None
        self.relay: _ServerLog | None = None
        self.stopping = threading.Event()
        self.wake = threading.Event()
        """Set by SIGTERM and by a change of the members: the agent looks again at once."""
        self.follower = Follower(options.node, options.node_netns, options.node_addresses,
                                 options.memory_dir, self.wake,
                                 kubeconfig=options.kubeconfig)
        self.iptables: str | None = None
        """The iptables backend, chosen at the first converge (`choose_iptables`)."""
        self.plugin = plugin_files(options.cni_bin_dir, options.socket)
        """What the agent installs, built from the very modules the server runs (same
        identity): the cold fallback, then the shim."""

    def run(self) -> int:
        """Converge, then keep converging until SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop())
        signal.signal(signal.SIGINT, lambda *_: self._stop())
        use_proc_sys(self.options.proc_sys)
        if self.options.health_port:
            serve_health(self, self.options.health_port)
        due = 0.0
        while not self.stopping.is_set():
            self.wake.clear()
            read = Snapshot.of(self.options.config)
            if (read.digest != self.attempted or time.monotonic() >= due or self._server_gone()
                    or self.follower.changed()):
                self.converge(read)
                wait = self.options.interval if self.ready else RETRY
                due = time.monotonic() + min(wait, self.options.interval)
            self.wake.wait(self.options.poll)
        self.follower.stop()
        self._stop_server()
        remove_socket(self.options.socket)
        try:
            _log_lines(left_on_node(self.options))
        except OSError as error:
            log(f"stopped (what stays on the node is unknown: {error})")
        return 0

    def converge(self, read: Snapshot | None = None) -> None:
        """Steps 1-4 for the configuration as `read` (default: as it is now).

        Each step changes only what differs; a failure leaves the agent not
        ready, and is logged when it is new, not at every retry.
        """
        read = read or Snapshot.of(self.options.config)
        if read.digest is not None and read.digest != self.attempted:
            log(f"configuration {read.digest[:12]} in {self.options.config}")
        self.attempted = read.digest
        details = ""
        try:
            condition = self._converge(read)
        except NotJoined as error:  # what keeps it out is shown by `netc status` too
            write_members(self.options, error.cluster, error.view)
            condition = str(error)
        except (NetcError, OSError, ValueError) as error:
            condition = str(error)
        except Exception as error:  # never a crash loop on every node: not ready, and why
            condition, details = f"{type(error).__name__}: {error}", traceback.format_exc()
        if condition:
            if condition != self.problem:
                log(f"not ready: {condition}")
                sys.stderr.write(details)
            self.ready, self.problem = False, condition
            return
        if not self.ready:
            log("ready")
        self.ready, self.problem = True, ""

    def _converge(self, read: Snapshot) -> str:
        """Steps 1-4; what keeps the node from being ready though they were done ("": nothing).

        The members of the node's cluster come from its source: with a
        datastore, the node's pods get their subnets once it holds a block,
        and while the datastore is away the last members stay applied -- the
        node works on, and the condition is its readiness.
        """
        clusters, networks = read.parsed()
        cluster, view = self.follower.cluster(clusters)
        if cluster is not None:
            clusters = [cluster if c.name == cluster.name else c for c in clusters]
        built = networks_for_node(networks, clusters, self.options.node)
        if cluster is None and any(n.ipam and n.ipam.cluster for n in networks):
            raise NetcError(f"node {self.options.node} is in none of the clusters of "
                            f"{self.options.config}")
        if self.iptables is None:
            self.iptables = choose_iptables(self.options.node_netns)
        _install_and_apply(self.options, self.plugin, cluster, built)
        if not self._server_running():
            self._start_server()
        _log_lines(write_conflists(self.options.cni_conf_dir, built))
        self.follower.holds_addresses = holds_addresses(built)
        if cluster is not None and view is not None and cluster.membership.dynamic:
            write_members(self.options, cluster, view)
        return view.condition if view is not None else ""

    def _stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _server_running(self) -> bool:
        return self.server is not None and self.server.poll() is None

    def _server_gone(self) -> bool:
        """Started once and ended since: the next poll converges, which starts it again."""
        return self.server is not None and not self._server_running()

    def _start_server(self) -> None:
        """`netc serve-cni`, waited for until it listens: a node made ready has its server."""
        if self.server is not None:
            log(f"warm server ended (status {self.server.returncode}); starting it again")
        start = (f"import sys; sys.path.append({package_root()!r}); "
                 "from runtime.cli import main; main()")
        command = [sys.executable, "-c", start, "serve-cni", "--socket", self.options.socket]
        self.server = subprocess.Popen(command, stderr=subprocess.PIPE)
        assert self.server.stderr is not None
        relay = self.relay = _ServerLog(self.server.stderr)
        relay.start()
        if not relay.settled.wait(SERVER_START) or not relay.listening:
            self._stop_server()
            raise NetcError(f"the warm server did not listen on {self.options.socket} within "
                            f"{SERVER_START:.0f} s")
        log(f"warm server listening (process {self.server.pid}, socket {self.options.socket})")

    def _stop_server(self) -> None:
        """Stop the server and let its last log lines through (the relay ends at its EOF)."""
        if self.server is not None and self._server_running():
            self.server.terminate()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self.relay is not None:
            self.relay.join(5)


class _ServerLog(threading.Thread):
    """The warm server's log, line by line into the agent's; it tells when the server listens.

    `settled` is set at its line "... listening on PATH", or when its log ends
    before that (it exited).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True, name="server-log")
        self.stream = stream
        self.listening = False
        self.settled = threading.Event()

    def run(self) -> None:
        for line in self.stream:
            os.write(2, line)
            if not self.settled.is_set() and b" listening on " in line:
                self.listening = True
                self.settled.set()
        self.settled.set()


@frozen
class Snapshot:
    """The configuration file as read once: what is hashed is what is applied.

    A ConfigMap update swaps the file between two reads; reading it twice,
    once to hash and once to parse, could log one revision and apply another.
    """

    path: str
    content: bytes | None
    digest: str | None = None
    """SHA-256 of the content (None: unreadable)."""
    error: str = ""
    """Why the file could not be read (when `content` is None)."""

    @classmethod
    def of(cls, path: str) -> Snapshot:
        """The file's bytes now, and their digest, or why there are none."""
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as error:
            return cls(path, None, error=str(error))
        return cls(path, content, hashlib.sha256(content).hexdigest())

    def parsed(self) -> tuple[list[Cluster], list[Network]]:
        """The clusters and networks the content holds; NetcError when it holds none."""
        try:
            if self.content is None:
                raise ValueError(self.error)
            document = json.loads(self.content.decode("utf-8"))
        except ValueError as error:  # JSON and UTF-8 errors are ValueErrors
            raise NetcError(f"cannot read the configuration {self.path}: {error}") from error
        except RecursionError:
            raise NetcError(f"cannot read the configuration {self.path}: nested too "
                            "deeply") from None
        return kubernetes.read_config(document)


def plugin_files(bin_dir: str, socket: str) -> list[tuple[str, bytes]]:
    """The plugin's files, in the order they are installed: the cold fallback, then the shim.

    The shim (compiled for the node, a static binary: the image's) hands
    calls to the warm server; while none answers it runs the cold file -- the
    plugin artifact, which needs the node's python3 -- where the node has one
    of the interpreters the artifact tries, and answers CNI error 11 (try
    again later) where it has none.  The shim is written last, so a runtime
    never finds a shim whose cold file is not there yet.
    """
    return [(shim.COLD, plugin_artifact(None)),
            (PLUGIN_NAME, shim.for_bin_dir(shim.for_this_machine(), bin_dir, socket,
                                           INTERPRETERS))]


def _install_and_apply(options: Options, plugin: Sequence[tuple[str, bytes]],
                       cluster: Cluster | None, networks: Sequence[Network]) -> None:
    """Steps 1 and 2, each change logged as it is made (a failure later leaves none unsaid)."""
    for name, content in plugin:
        installed = install_plugin(options.cni_bin_dir, content, name)
        if installed:
            log(f"installed {installed}")
    plan = node_plan(cluster, options.node, networks)
    apply_node(plan, networks, options.node_netns,
               lambda change: _log_lines(f"applied {line}" for line in change.lines()))


def choose_iptables(node_netns: str | None) -> str:
    """The iptables backend the agent and its warm server run: NETC_IPTABLES, else the node's.

    The agent's iptables is its image's, which must write where kube-proxy
    and the kubelet write: detected once, at start (`iptables.detect_backend`),
    and passed to the warm server through its environment.
    """
    backend = iptables.chosen_backend()
    if backend is not None:
        log(f"iptables backend {backend} ({iptables.BACKEND_VARIABLE})")
    else:
        with node_namespace(node_netns):
            detected = iptables.detect_backend()
        backend = detected.backend
        iptables.use_backend(backend)
        log(detected.describe())
    os.environ[iptables.BACKEND_VARIABLE] = backend
    return backend


def install_plugin(bin_dir: str, plugin: bytes, name: str = PLUGIN_NAME) -> str | None:
    """The plugin file `name` into `bin_dir` unless it is there already; its path when written.

    Always a new file renamed over the old one, never a rewrite in place: a
    runtime may be executing the old one ("text file busy"), and a runtime
    starting it meanwhile finds the old or the new file, whole.  Someone
    else's change to the file is undone (drift repair).
    """
    target = os.path.join(bin_dir, name)
    try:
        with open(target, "rb") as handle:
            if handle.read() == plugin:
                return None
    except FileNotFoundError:
        pass
    os.makedirs(bin_dir, exist_ok=True)
    write_atomically(target, plugin, durable=True, mode=0o755)
    return target


def write_conflists(conf_dir: str, networks: Sequence[Network]) -> list[str]:
    """The networks' conflists into `conf_dir`, netc's stale ones out; what changed.

    netc owns what it wrote there (runtime.outdir): a file of another plugin
    is never touched, one of netc's that someone edited since is left.
    """
    outputs = {emit.file_name(n): outdir.Output(n.name, emit.render(emit.conflist(n, "netc")))
               for n in networks}
    plan = outdir.plan_directory(conf_dir, outputs)
    outdir.carry_out(conf_dir, plan)
    verbs = {outdir.FileAction.WRITE: "wrote", outdir.FileAction.REMOVE: "removed stale",
             outdir.FileAction.EDITED: "left edited"}
    return [f"{verbs[c.action]} {os.path.join(conf_dir, c.name)}"
            for c in plan.changes if c.action in verbs]


def left_on_node(options: Options) -> list[str]:
    """What the agent leaves on the node when it stops, as the node holds it now.

    The plugin and netc's conflists stay on purpose (pods keep attaching, cold);
    an agent that never got that far must not claim they do.
    """
    plugin = os.path.join(options.cni_bin_dir, PLUGIN_NAME)
    present = os.path.exists(plugin)
    conflists = len(outdir.owned(options.cni_conf_dir))
    conf_dir, bin_dir = options.cni_conf_dir, options.cni_bin_dir
    counted = f"{conflists} conflist{'s' if conflists != 1 else ''} of netc's"
    if present and conflists:
        line = (f"the plugin {plugin} and {counted} in {conf_dir} stay: pods attach through "
                "the cold path")
    elif present:
        line = (f"the plugin {plugin} stays; no conflist of netc's is in {conf_dir}, so no "
                "pod attaches through it")
    elif conflists:
        line = (f"{counted} {'stay' if conflists != 1 else 'stays'} in {conf_dir}, but no "
                f"plugin is in {bin_dir}: pods of {'their' if conflists != 1 else 'its'} "
                "networks cannot attach until an agent installs it")
    else:
        line = (f"nothing of netc's is on this node: no plugin in {bin_dir}, no conflist of "
                f"netc's in {conf_dir}")
    return [f"stopped; {line}"]


def holds_addresses(networks: Sequence[Network]) -> bool:
    """Whether pods of the networks hold addresses on this node (their block must stay)."""
    return any(IpamStore(n.ipam.data_dir, n.name).holders() for n in networks
               if n.ipam is not None and n.ipam.cluster is not None)


def remove_socket(path: str) -> None:
    """The warm server's socket, once the server has stopped (a socket file, nothing else).

    A stale socket makes every call try it first, and left behind after
    netc's removal it is one more file of netc's on the node.
    """
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def members_file(options: Options) -> str:
    """Where the agent says what it knows of its cluster's members: beside its socket."""
    return os.path.join(os.path.dirname(options.socket), membership.STATUS_FILE)


def write_members(options: Options, cluster: Cluster, view: membership.View) -> None:
    """The members as the agent knows them, for `netc status` (written when they change)."""
    text = json.dumps(membership.status_document(cluster, options.node, view), indent=1,
                      sort_keys=True) + "\n"
    path = members_file(options)
    if read_text(path) != text:
        write_atomically(path, text.encode(), durable=False)


def _log_lines(lines: Iterable[str]) -> None:
    for line in lines:
        log(line)


def serve_health(agent: Agent, port: int) -> http.server.ThreadingHTTPServer:
    """GET /readyz: 200 once converged, 503 with the reason; /healthz: 200 while running.

    On 127.0.0.1 of the node (the pod has the host's network): the kubelet's
    probe reaches it there, nothing off the node does.  `port` 0 takes any free
    port (the server's `server_address` says which).
    """

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                status, body = 200, "ok"
            elif self.path == "/readyz":
                status, body = (200, "ok") if agent.ready else (503, agent.problem)
            else:
                status, body = 404, "not found"
            data = f"{body}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            """Probes every few seconds would drown the log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server
