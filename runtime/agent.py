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
changed is put back), logging each change it makes; and when its peers
change, trusting the NAT's shape for that converge (`converge`).  It is ready (GET /readyz on
localhost) once all four are done; a node missing from the configuration,
or a configuration it cannot read, is an error: it stays not ready and
writes no conflist.  It is live (GET /livez) unless a restart would help:
its loop has not come round for `Options.stalled_after` seconds, or its
warm server could not be started again `SERVER_FAILURES` times in a row.
On SIGTERM it stops the server, removes its socket and leaves the plugin
and the conflists in place, so pods keep being attached and detached (cold)
while it restarts (cilium#24009).

Its HTTP endpoint (`serve_health`, runtime/health.py) answers the probes
and serves its metrics (runtime/metrics.py, which its warm server's calls
feed too); its log is text or JSON, an event per change (runtime/events.py).

The agent works in its own container: what it writes on the node is
mounted from the node at the same path (compiler/kubernetes.py) -- the CNI
conf and bin dirs, /run/netc, the networks' state and IPAM directories,
/run/xtables.lock --, the node's sysctls are its /proc/sys/net mounted at
/host/proc/sys/net (`--proc-sys`), and iptables is its image's, run with the
backend the node's other users chose (`choose_iptables`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import IO

from compiler import emit, kubernetes
from compiler.cluster import networks_for_node
from compiler.datatypes import frozen
from compiler.errors import NetcError
from compiler.ir import Cluster, Network
from compiler.planner.attach import node_operations
from compiler.planner.node import node_plan
from compiler.planner.ops import Plan
from runtime import iptables, membership, outdir, shim
from runtime.apply import AppliedChange, apply_node
from runtime.artifact import INTERPRETERS, plugin_artifact
from runtime.events import CHANGES, log, relay, use_format
from runtime.files import read_text, write_atomically
from runtime.health import Endpoint, Reply
from runtime.host import PROC_SYS, use_proc_sys
from runtime.install import netc_command, package_root
from runtime.ipam_store import IpamStore
from runtime.membership.follower import Follower, NotJoined
from runtime.metrics import CONTENT_TYPE, Metrics
from runtime.netns import node_namespace

PLUGIN_NAME = "netc-cni"
SERVER_START = 20.0
"""Seconds the warm server may take to import the plugin and listen."""
RETRY = 5.0
"""Seconds before a failed converge is tried again (a change of the configuration: at once)."""
STALLED_INTERVALS = 3
STALL_MIN = 120.0
"""Seconds a converge may legitimately take: a lock held by a pod's call (30 s), the warm
server's start (20 s), a slow datastore."""
SERVER_FAILURES = 3
"""Failed starts of the warm server in a row after which the agent is not live."""
TEXT = "text/plain; charset=utf-8"
MAX_REPORT = 4096
"""Bytes of a call report of the warm server (one write on a pipe: PIPE_BUF)."""


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
    stall_after: float | None = None
    """Seconds without a turn of the agent's loop after which it is not live (default:
    `stalled_after`)."""
    log_format: str = "text"
    """`text` or `json` (runtime/events.py)."""

    @property
    def stalled_after(self) -> float:
        """`stall_after`, else `STALLED_INTERVALS` intervals and at least `STALL_MIN` seconds."""
        return self.stall_after or max(STALLED_INTERVALS * self.interval, STALL_MIN)


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
        self.follower = Follower(
            options.node,
            options.node_netns,
            options.node_addresses,
            options.memory_dir,
            self.wake,
            kubeconfig=options.kubeconfig,
        )
        self.iptables: str | None = None
        """The iptables backend, chosen at the first converge (`choose_iptables`)."""
        self.plugin = plugin_files(options.cni_bin_dir, options.socket)
        """What the agent installs, built from the very modules the server runs (same
        identity): the cold fallback, then the shim."""
        self.turned = time.monotonic()
        """When the loop last came round (`liveness`)."""
        self.doing = "starting"
        self.server_failures = 0
        """Failed starts of the warm server since it last listened."""
        self.server_problem = ""
        self.metrics = Metrics()
        self.settled: tuple[str | None, Plan] | None = None
        """The configuration and node plan of the last converge that made the node ready: a
        converge of the same is a drift repair, if it changes anything."""
        self.repairing = False

    def run(self) -> int:
        """Converge, then keep converging until SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop())
        signal.signal(signal.SIGINT, lambda *_: self._stop())
        use_format(self.options.log_format, self.options.node)
        use_proc_sys(self.options.proc_sys)
        health = serve_health(self, self.options.health_port) if self.options.health_port else None
        due = 0.0
        while not self.stopping.is_set():
            self.turned = time.monotonic()
            self.wake.clear()
            read = Snapshot.of(self.options.config)
            thorough = read.digest != self.attempted or time.monotonic() >= due or not self.ready
            if thorough or self._server_gone() or self.follower.changed():
                self.doing = "converging"
                self.converge(read, thorough)
                if thorough or not self.ready:
                    wait = self.options.interval if self.ready else RETRY
                    due = time.monotonic() + min(wait, self.options.interval)
            self.doing = "waiting"
            self.wake.wait(self.options.poll)
        if health is not None:
            health.close()
        self.follower.stop()
        self._stop_server()
        remove_socket(self.options.socket)
        try:
            stopped = left_on_node(self.options)
        except OSError as error:
            stopped = f"stopped (what stays on the node is unknown: {error})"
        log(stopped, "stopped")
        return 0

    def converge(self, read: Snapshot | None = None, thorough: bool = True) -> None:
        """Steps 1-4 for the configuration as `read` (default: as it is now).

        Each step changes only what differs; a failure leaves the agent not
        ready, and is logged when it is new, not at every retry.  A converge
        for the peers' coming and going alone is not `thorough`: it trusts
        the NAT's shape as a pod's ADD does (`runtime.apply.apply_node`),
        and the next one on the interval checks it rule by rule.
        """
        read = read or Snapshot.of(self.options.config)
        if read.digest is not None and read.digest != self.attempted:
            log(
                f"configuration {read.digest[:12]} in {self.options.config}",
                "configuration",
                path=self.options.config,
            )
        self.attempted = read.digest
        started = time.monotonic()
        details = ""
        try:
            condition = self._converge(read, thorough)
        except NotJoined as error:  # what keeps it out is shown by `netc status` too
            write_members(self.options, error.cluster, error.view)
            condition = str(error)
        except (NetcError, OSError, ValueError) as error:
            condition = str(error)
        except Exception as error:  # never a crash loop on every node: not ready, and why
            condition, details = f"{type(error).__name__}: {error}", traceback.format_exc()
        self._count(condition, time.monotonic() - started)
        if condition:
            if condition != self.problem:
                log(f"not ready: {condition}", "not ready", trace=details)
            self.ready, self.problem = False, condition
            return
        if not self.ready:
            log("ready", "ready")
        self.ready, self.problem = True, ""

    def _count(self, condition: str, seconds: float) -> None:
        metrics = self.metrics
        metrics.converges.inc()
        metrics.converge_seconds.observe(seconds)
        if condition:
            metrics.converge_failures.inc()
        metrics.ready.set(0 if condition else 1)

    def _converge(self, read: Snapshot, thorough: bool) -> str:
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
            raise NetcError(
                f"node {self.options.node} is in none of the clusters of {self.options.config}"
            )
        if self.iptables is None:
            self.iptables = choose_iptables(self.options.node_netns)
        plan = node_plan(cluster, self.options.node, built)
        self.repairing = self.settled == (read.digest, plan)
        self.metrics.peers.set(0 if cluster is None else len(cluster.nodes) - 1)
        self._install_and_apply(plan, built, thorough)
        if not self._server_running():
            self._start_server()
        for written in write_conflists(self.options.cni_conf_dir, built):
            if written.verb in CHANGES:
                self._changed(
                    "conflist",
                    written.line,
                    written.verb,
                    network=written.network,
                    path=written.path,
                )
            else:
                log(written.line, written.verb, network=written.network, path=written.path)
        self.follower.holds_addresses = holds_addresses(built)
        if cluster is not None and view is not None and cluster.membership.dynamic:
            write_members(self.options, cluster, view)
        condition = view.condition if view is not None else ""
        self.settled = None if condition else (read.digest, plan)
        return condition

    def _install_and_apply(self, plan: Plan, networks: Sequence[Network], thorough: bool) -> None:
        """Steps 1 and 2, each change logged as it is made (a failure later leaves none unsaid)."""
        for name, content in self.plugin:
            installed = install_plugin(self.options.cni_bin_dir, content, name)
            if installed:
                self._changed("plugin", f"installed {installed}", "installed", path=installed)
        owners = _owners(networks)

        def applied(change: AppliedChange) -> None:
            network = owners.get((change.op.kind, change.op.target))
            for line in change.lines():
                self._changed(
                    "node",
                    f"applied {line}",
                    "applied",
                    **({"network": network} if network else {}),
                )

        apply_node(plan, networks, self.options.node_netns, applied, thorough)

    def _changed(self, kind: str, message: str, event: str, **fields: str) -> None:
        """A change made to the node: logged as its event, and counted.

        `kind` is plugin, node or conflist; a change that nothing asked for --
        the configuration and plan were applied already -- is a drift repair.
        """
        log(message, event, **fields)
        self.metrics.changes.labels(kind).inc()
        if self.repairing:
            self.metrics.repairs.labels(kind).inc()

    def liveness(self) -> str:
        """Why a restart of this process would help ("": nothing) -- not whether it is ready.

        A loop that no longer comes round is stuck (a converge that never
        returns); a warm server that cannot be started again may be held up
        by something of this process's own.  A node that is not converged
        is neither: that is readiness, and a restart would not change it.
        """
        stalled = time.monotonic() - self.turned
        if stalled > self.options.stalled_after:
            return f"the agent's loop has not come round for {stalled:.1f} s ({self.doing})"
        if self.server_failures >= SERVER_FAILURES:
            return (
                f"{self.server_failures} starts of the warm server in a row failed, the "
                f"last: {self.server_problem}"
            )
        return ""

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
            log(
                f"warm server ended (status {self.server.returncode}); starting it again",
                "warm server ended",
            )
        reports, writer = os.pipe()
        command = [
            *netc_command(sys.executable, [package_root()]),
            "serve-cni",
            "--socket",
            self.options.socket,
            "--report-fd",
            str(writer),
        ]
        try:
            self.server = subprocess.Popen(command, stderr=subprocess.PIPE, pass_fds=(writer,))
        finally:
            os.close(writer)
        _CallReports(reports, self.metrics).start()
        assert self.server.stderr is not None
        relay = self.relay = _ServerLog(self.server.stderr)
        relay.start()
        settled = relay.settled.wait(SERVER_START)
        if not settled or not relay.listening:
            self._stop_server()  # its log ended before it listened: it is ending by itself
            self.server_failures += 1
            self.metrics.server_starts.labels("failed").inc()
            self.server_problem = (
                f"the warm server ended (status {self.server.returncode}) before it listened "
                f"on {self.options.socket}: {relay.last}"
                if settled
                else f"the warm server did not listen on {self.options.socket} within "
                f"{SERVER_START:.0f} s"
            )
            raise NetcError(self.server_problem)
        self.server_failures, self.server_problem = 0, ""
        self.metrics.server_starts.labels("ok").inc()
        log(
            f"warm server listening (process {self.server.pid}, socket {self.options.socket})",
            "warm server listening",
            path=self.options.socket,
        )

    def _stop_server(self) -> None:
        """Stop the server and let its last log lines through (the relay ends at its EOF).

        A server whose log ended before it listened is exiting: it is waited
        for, not signalled (its status says why it ended).
        """
        if self.server is not None and self._server_running():
            relay = self.relay
            if relay is not None and relay.settled.is_set() and not relay.listening:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.server.wait(5)
            if self.server.poll() is None:
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
    before that (it exited); `last` is its last line (what it said, ending).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True, name="server-log")
        self.stream = stream
        self.listening = False
        self.settled = threading.Event()
        self.last = ""

    def run(self) -> None:
        for line in self.stream:
            relay(line)
            self.last = line.decode(errors="replace").strip()
            if not self.settled.is_set() and b" listening on " in line:
                self.listening = True
                self.settled.set()
        self.settled.set()


class _CallReports(threading.Thread):
    """The warm server's call reports, counted into the agent's metrics as they come.

    Reads the pipe the server and its children write one line per call to
    (runtime/cni/server.py); ends when the last of them closes it.
    """

    def __init__(self, fd: int, metrics: Metrics) -> None:
        super().__init__(daemon=True, name="call-reports")
        self.fd = fd
        self.metrics = metrics

    def run(self) -> None:
        with open(self.fd, "rb") as reports:
            while line := reports.readline(MAX_REPORT):
                self.metrics.observe_report(line)


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
            raise NetcError(
                f"cannot read the configuration {self.path}: nested too deeply"
            ) from None
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
    return [
        (shim.COLD, plugin_artifact(None)),
        (PLUGIN_NAME, shim.for_bin_dir(shim.for_this_machine(), bin_dir, socket, INTERPRETERS)),
    ]


def _owners(networks: Sequence[Network]) -> dict[tuple[str, str], str]:
    """The network of each node operation that only one network asks for (a bridge, its NAT).

    The node's forwarding and its peers' routes belong to none.
    """
    owners: dict[tuple[str, str], str | None] = {}
    for network in networks:
        if network.bridge and network.ipam:
            for op in node_operations(network):
                key = (op.kind, op.target)
                owners[key] = (
                    network.name if owners.get(key, network.name) == network.name else None
                )
    return {key: name for key, name in owners.items() if name is not None}


def choose_iptables(node_netns: str | None) -> str:
    """The iptables backend the agent and its warm server run: NETC_IPTABLES, else the node's.

    The agent's iptables is its image's, which must write where kube-proxy
    and the kubelet write: detected once, at start (`iptables.detect_backend`),
    and passed to the warm server through its environment.
    """
    backend = iptables.chosen_backend()
    if backend is not None:
        log(f"iptables backend {backend} ({iptables.BACKEND_VARIABLE})", "iptables backend")
    else:
        with node_namespace(node_netns):
            detected = iptables.detect_backend()
        backend = detected.backend
        iptables.use_backend(backend)
        log(detected.describe(), "iptables backend")
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


@frozen
class Written:
    """What `write_conflists` did with one file (or, `left edited`, did not)."""

    verb: str
    """wrote, removed stale, left edited."""
    path: str
    network: str

    @property
    def line(self) -> str:
        """As the log says it."""
        return f"{self.verb} {self.path}"


def write_conflists(conf_dir: str, networks: Sequence[Network]) -> list[Written]:
    """The networks' conflists into `conf_dir`, netc's stale ones out; what changed.

    netc owns what it wrote there (runtime.outdir): a file of another plugin
    is never touched, one of netc's that someone edited since is left.
    """
    outputs = {
        emit.file_name(n): outdir.Output(n.name, emit.render(emit.conflist(n, "netc")))
        for n in networks
    }
    plan = outdir.plan_directory(conf_dir, outputs)
    outdir.carry_out(conf_dir, plan)
    verbs = {
        outdir.FileAction.WRITE: "wrote",
        outdir.FileAction.REMOVE: "removed stale",
        outdir.FileAction.EDITED: "left edited",
    }
    return [
        Written(verbs[c.action], os.path.join(conf_dir, c.name), c.network)
        for c in plan.changes
        if c.action in verbs
    ]


def left_on_node(options: Options) -> str:
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
        line = (
            f"the plugin {plugin} and {counted} in {conf_dir} stay: pods attach through "
            "the cold path"
        )
    elif present:
        line = (
            f"the plugin {plugin} stays; no conflist of netc's is in {conf_dir}, so no "
            "pod attaches through it"
        )
    elif conflists:
        line = (
            f"{counted} {'stay' if conflists != 1 else 'stays'} in {conf_dir}, but no "
            f"plugin is in {bin_dir}: pods of {'their' if conflists != 1 else 'its'} "
            "networks cannot attach until an agent installs it"
        )
    else:
        line = (
            f"nothing of netc's is on this node: no plugin in {bin_dir}, no conflist of "
            f"netc's in {conf_dir}"
        )
    return f"stopped; {line}"


def holds_addresses(networks: Sequence[Network]) -> bool:
    """Whether pods of the networks hold addresses on this node (their block must stay)."""
    return any(
        IpamStore(n.ipam.data_dir, n.name).holders()
        for n in networks
        if n.ipam is not None and n.ipam.cluster is not None
    )


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
    text = (
        json.dumps(
            membership.status_document(cluster, options.node, view), indent=1, sort_keys=True
        )
        + "\n"
    )
    path = members_file(options)
    if read_text(path) != text:
        write_atomically(path, text.encode(), durable=False)


def serve_health(agent: Agent, port: int) -> Endpoint:
    """The agent's HTTP endpoint on 127.0.0.1 of the node (the pod has the host's network).

    GET /livez: 200, or 503 and why a restart would help (`Agent.liveness`);
    /readyz: 200 once converged, or 503 and the reason; /healthz: /livez's
    older name.  The kubelet's probes reach it there, nothing off the node
    does.  `port` 0 takes any free port (the endpoint's `port` says which,
    once `bound`).  Listening is tried until it succeeds: a port taken by
    someone else stops none of the agent's work (runtime/health.py).
    """

    def answer(path: str) -> Reply:
        if path in ("/livez", "/healthz"):
            problem = agent.liveness()
        elif path == "/readyz":
            problem = "" if agent.ready else agent.problem
        elif path == "/metrics":
            return 200, CONTENT_TYPE, agent.metrics.exposition()
        else:
            return 404, TEXT, b"not found\n"
        return (503 if problem else 200), TEXT, f"{problem or 'ok'}\n".encode()

    return Endpoint("127.0.0.1", port, answer, lambda said: log(said, "health endpoint")).start()
