"""The warm plugin server: netc-cni without Python's start-up on every call.

A CNI plugin is a new process per call, and a Python one spends most of its
time importing before it does any work (docs/benchmarks.md has the numbers).
`netc serve-cni` imports the plugin once and waits on a unix socket; the
launcher `netc install-plugin --warm-socket PATH` writes connects there and
hands over the call:

    server  --fork-->  child (a spare, forked in advance)
    launcher  --connect-->  child: accepts; the server forks the next spare
      HANDOVER: MAGIC, protocol version, payload length, payload
                (identity NUL environment)
                                             child: reads the hand-over whole
                                   <-- READY (or NOT_ME: run it yourself)
      GO, with SCM_RIGHTS: its stdin, stdout, stderr and its network and
          mount namespaces -->
                                             child: enters both namespaces
                                   <-- STARTED (or NOT_ME)
                                             child: takes over the streams,
                                             runs the plugin
                                   <-- the exit status (one byte)
                                             child: a DEL's device deletion
                                             (after the answer; see
                                             `runtime.executor.remove`),
                                             then the next caller already
                                             waiting, if any (`_serve_waiting`)

The server process only forks (see `Spare`): everything a caller sends is read
by that connection's own child, under a deadline, so no client -- silent,
slow, malformed, killed -- can stall the server or another call.  A child
never returns into the server's loop, whatever happens to it: it ends with
`os._exit`.

The two-step start (READY, then GO) decides who runs the call: until the
launcher sends GO nothing has run, and a launcher that gave up waiting runs
the plugin itself; once it has sent GO the call is the server's (unless it
answers NOT_ME), and the launcher waits for its status.  The standard
streams travel with GO, not before: a launcher that gave up on a stuck
server must not leave its stdout in flight in that server's socket, or a
runtime reading the call's stdout to its end would wait for the server.

The child is a fork of a process that has imported everything, made before
the call: a call costs neither an interpreter start nor a fork.  It runs in the caller's
namespaces with the caller's environment (bytes for bytes) and standard
streams: the runtime cannot tell the difference.  When the server is not
running, or was started from another netc, the launcher runs the plugin
itself (the cold path), so the server is an accelerator, never a dependency.

Each call is reported, when the server is given a descriptor to report on
(`--report-fd`, a pipe from the agent): one JSON line with its command,
result, duration and the seconds it waited for each kind of lock, written
by the call's child after the caller has its exit status -- no call waits
for it -- in one write(2), which a pipe keeps whole, and never blocking: a
reader that falls behind loses reports, never calls (`Spare.account`).
A server given that descriptor is the agent's, and ends with it
(`_end_with_agent`).

The socket is created mode 0600, and a caller must be root in the server's
user namespace holding every capability the server holds (SO_PEERCRED, then
the caller's /proc entry, pinned by a pidfd): the server lends nothing.
Programs (iptables-restore, conntrack, modprobe) start from the server's own
mount namespace, or the one `--host-mount-ns` names, never the caller's
(`runtime.programs`).  The launcher's side of the protocol is in
runtime/install.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.abc
import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import NoReturn

from compiler.errors import Code, NetcError
from runtime import programs, spent
from runtime.cni import pages, plugin
from runtime.netns import CLONE_NEWNET, CLONE_NEWNS, NetnsError, enter, prepare

PR_SET_PDEATHSIG = 1
STREAMS = 3
FDS = STREAMS + 2
"""stdin, stdout, stderr, then the network and the mount namespace."""
MAGIC = b"netc-cni"
PROTOCOL = 1
HEADER = struct.Struct(">BI")
"""After MAGIC: the protocol version and the payload's length in bytes."""
MAX_PAYLOAD = 8 << 20
"""More than any environment a process can be started with (Linux caps it at 6 MiB)."""
NOT_ME = 254
"""Reply telling the launcher to run the plugin itself: another netc, or a hand-over refused."""
READY = 253
"""Reply: the hand-over was read whole; waiting for GO and the descriptors."""
STARTED = 252
"""Reply to GO: the namespaces are entered, the plugin runs; its exit status follows."""
GO = 1
FAILED = 1
HANDOVER_TIMEOUT = 5.0
"""Seconds a connection's child waits for the whole hand-over and then for GO."""
BACKLOG = 512
CALLS_PER_PROCESS = 32
"""Calls one process serves at most, one after the other (`_serve_waiting`)."""
NEXT_CALLER_WAIT = 0.05
"""Seconds a process that served a call waits in accept() for a caller it saw waiting."""
FORK_GRACE_MS = 20
"""Milliseconds a busy server leaves a waiting caller to the processes ending their calls."""
QUIET_REPORTS = 32
"""Reports in a row that teach the server nothing, after which calls stop looking for pages."""
SO_PEERPIDFD = 77
"""getsockopt(2): a pidfd of the peer as it connected (Linux 6.5; Python 3.11 lacks the name)."""


class Refused(Exception):
    """A hand-over this server does not run (the launcher then runs the plugin itself)."""


def serve(
    path: str,
    identity: str,
    handover_timeout: float = HANDOVER_TIMEOUT,
    host_mount_ns: str | None = None,
    report: int | None = None,
) -> None:
    """Serve calls on `path` until killed; `identity` must match the launcher's.

    Programs start in `host_mount_ns` (a path such as /proc/1/ns/mnt; default:
    this process's own mount namespace).  Each call is reported on the
    descriptor `report` (see the module's docstring), which no program
    inherits.
    """
    _preload()
    home = os.open(host_mount_ns or "/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    if report is not None:
        os.set_inheritable(report, False)
        os.set_blocking(report, False)
        _end_with_agent(report)
    listener = _listen(path)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print(f"netc-cni server listening on {path}", file=sys.stderr, flush=True)
    spare = Spare(listener, os.fsencode(identity), handover_timeout, home, report)
    while True:
        spare.fork_and_wait()


def _end_with_agent(report: int) -> None:
    """Have the kernel end this server (SIGTERM) when the agent that started it ends.

    In a pod the agent's end ends its container, and the server with it; an
    agent killed outside one (a crash, a supervisor that signals only its
    main process) would leave its server serving calls that no one
    accounts for, beside the server of the agent started next.  An agent
    gone already has left the report pipe without a reader.
    """
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    waiting = select.poll()
    waiting.register(report, select.POLLOUT)
    if any(events & select.POLLERR for _, events in waiting.poll(0)):
        raise SystemExit("netc-cni server: the agent that started it has ended")


class Spare:
    """The child that waits in accept() for the next call, forked before the call comes.

    The fork is the slowest step of a hand-over (and more while the child's
    first writes copy the pages it shares with the server), so it
    happens between calls: the server keeps one child blocked in accept().
    The child that takes a connection tells the server through a pipe of its
    own; the server forks the next spare when that call ends (the pipe's
    end), or at once if another caller is already waiting, so a fork competes
    for the CPU with a call only when calls overlap anyway.  While it waits,
    the spare also copies the pages calls write (`own_pages`), so that the
    call does not fault them in one by one.  A spare that
    ends without a connection closes its pipe all the same, and one that
    loses its server (PR_SET_PDEATHSIG) is killed with it, so no orphan is
    ever left accepting calls on a stopped server's socket.
    """

    def __init__(
        self,
        listener: socket.socket,
        identity: bytes,
        handover_timeout: float,
        home: int,
        report: int | None = None,
    ) -> None:
        self.listener = listener
        self.identity = identity
        self.handover_timeout = handover_timeout
        self.home = home
        """The mount namespace programs start in."""
        self.namespaces = tuple(
            os.open(f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in ("mnt", "net")
        )
        """The server's own mount and network namespaces, where a child waits between calls."""
        self.environment = dict(os.environb)
        """The server's environment, a child's own between calls."""
        self.report = report
        """Where each call is reported (non-blocking), if anywhere."""
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.learned, self.teacher = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        """Where calls tell the server which pages they wrote (`runtime.cni.pages`)."""
        for end in (self.learned, self.teacher):
            end.setblocking(False)
        self.pages = pages.Learning(known=(), unknown=pages.writable_now())
        """What the next spare is told of the pages calls write: nothing yet, of all the
        writable memory the server has, loaded as it is (it only forks from now on)."""
        self.quiet = 0
        """Reports in a row that taught nothing new."""

    def fork_and_wait(self) -> None:
        """Fork a spare; return once it has ended, or has a call and another caller waits.

        Signals are blocked across the fork, so that no Python signal handler
        can raise in the child before it is inside `_child`'s try block.
        """
        taken, tell = os.pipe()
        server = os.getpid()
        self.pages = self._learn()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            if os.fork() == 0:
                os.close(taken)
                _child(self, tell, server, mask)
        except OSError as error:
            _log(f"cannot fork a spare: {error}")
            time.sleep(0.05)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(tell)
        try:
            if os.read(taken, 1):  # b"T"; b"" from a spare that ended without a call
                self._until_ended_or_called(taken)
        finally:
            os.close(taken)

    def _until_ended_or_called(self, taken: int) -> None:
        """Until the spare's call ends, or another caller waits whom no process takes soon.

        While the server has more children than twice the CPUs, calls are
        waiting for the CPUs anyway, and a process ending its call takes a
        waiting caller (`_serve_waiting`): a fork for that caller would only
        add a process.  So a busy server leaves the caller `FORK_GRACE_MS`
        to them; with fewer calls at once it forks at once.
        """
        waiting = select.poll()
        waiting.register(taken, select.POLLIN)
        waiting.register(self.listener, select.POLLIN)
        ended = select.poll()
        ended.register(taken, select.POLLIN)
        while not any(fd == taken for fd, _ in waiting.poll()):
            if self._children() <= 2 * (os.cpu_count() or 1):
                return
            if ended.poll(FORK_GRACE_MS) or _caller_waiting(self.listener):
                return

    @staticmethod
    def _children() -> int:
        """How many children the server has now (0 where /proc does not say)."""
        pid = os.getpid()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                return len(children.read().split())
        except OSError:
            return 0

    def die_with(self, server: int) -> bool:
        """Have the kernel kill this child when the server ends; False if it already has."""
        self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        return os.getppid() == server

    def _learn(self) -> pages.Learning:
        """The pages calls were seen to write, with what calls reported since the last fork.

        A call reports after its answer, while the next spare is forked: what
        it taught reaches the spare after that one.  After `QUIET_REPORTS`
        reports in a row that taught nothing new, calls stop looking.
        """
        if not self.pages.unknown:
            return self.pages
        reported: list[pages.Range] = []
        reports = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                reported += pages.decode(self.learned.recv(pages.MAX_RANGES * pages.RANGE.size))
                reports += 1
        known = pages.merged([*self.pages.known, *reported])
        self.quiet = self.quiet + reports if known == self.pages.known else 0
        if self.quiet >= QUIET_REPORTS:
            return pages.Learning(known, unknown=())
        return pages.Learning(known, tuple(pages.without(self.pages.unknown, known)))

    def own_pages(self) -> int | None:
        """Copy the pages calls write now, unless a caller is waiting already.

        A forked child shares the server's pages copy-on-write, and a call
        writes to hundreds of them (reference counts all over the heap): page
        faults on the call's path (docs/benchmarks.md).  The spare takes
        its copies while no one waits for it, a step at a time, and stops as
        soon as a connection is pending.  The price is memory: a spare holds a
        private copy of them (docs/runtime.md).  Returns /proc/self/pagemap
        while the server learns, opened here in the server's mount namespace,
        where the call's process will look for the pages it wrote (`teach`).
        """
        pending = select.poll()
        pending.register(self.listener, select.POLLIN)
        self.pages.own(self.libc, pending)
        if not self.pages.unknown:
            return None
        try:
            return os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no /proc, or one this process may not read: calls teach nothing
            return None

    def teach(self, pagemap: int) -> None:
        """Tell the server which pages this call wrote that the spare was not told to copy.

        After the server has heard the call ended: the next spare is forked
        meanwhile, and learns from this call the time after.
        """
        with contextlib.suppress(OSError):
            self.teacher.send(pages.encode(self.pages.written(pagemap)))

    def outlive_server(self) -> None:
        """A child serving a call finishes it whatever happens to the server."""
        self.libc.prctl(PR_SET_PDEATHSIG, 0)

    def account(self, outcome: plugin.Outcome | None, seconds: float) -> None:
        """Report a call -- or, without an outcome, a hand-over refused -- in one line.

        The locks it waited for are this process's since the call began
        (`runtime.spent`), by kind, summed.  A report the pipe cannot take now
        is dropped.
        """
        if self.report is None:
            return
        record = (
            {"refused": True}
            if outcome is None
            else {
                "command": outcome.command[:16],
                "code": outcome.code,
                "seconds": round(seconds, 6),
                "locks": {kind: round(waited, 6) for kind, waited in spent.LOCK_WAITS.items()},
            }
        )
        with contextlib.suppress(OSError):
            os.write(self.report, json.dumps(record).encode() + b"\n")


def _preload() -> None:
    """Import (and warm the caches of) everything a call could need, so children never do.

    A child runs in the caller's mount namespace, where this server's files
    may not exist (the agent's container image is not the node): it must not
    import anything there (`_ImportsClosed`).  What netc's modules import
    inside functions is imported here (tests/rollout/test_artifact.py checks).
    """
    import importlib.metadata  # noqa: F401 - runtime.install.netc_version (the CLI has it imported)

    import compiler.quantities  # noqa: F401 - compiler.planner.context, on demand
    import runtime.cni.commands  # the plugin imports it per call (and the handlers)
    import runtime.cni.request  # the same
    import runtime.deadline  # noqa: F401 - the same
    from compiler import datatypes, ir_codec

    ir_codec.warm()
    datatypes.compile_pending()
    prepare()
    gc.freeze()  # what is loaded now is never collected: no child scans (and copies) it


class _ImportsClosed(importlib.abc.MetaPathFinder):
    """Refuses every import not done yet, in a child that entered the caller's namespaces.

    There a module would come from the caller's file system (another Python,
    or none), not from this netc.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        raise ImportError(
            f"netc-cni server: {name} was not preloaded, and nothing is "
            "imported in the caller's namespaces"
        )


class UnsafeSocketDirectory(NetcError):
    """A socket directory others may write in: they could put their own server at its name."""

    code = Code.BAD_CONFIG


def _listen(path: str) -> socket.socket:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    status = os.stat(directory)
    if status.st_uid != os.geteuid() or status.st_mode & 0o022:
        raise UnsafeSocketDirectory(
            f"{directory} is writable by others (mode {stat.S_IMODE(status.st_mode):04o}, "
            f"owner {status.st_uid}): they could serve calls in netc's place",
            details="give --socket a path in a directory only root may write, such as /run/netc",
        )
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(BACKLOG)
    return listener


def _child(spare: Spare, tell: int, server: int, mask: set[int | signal.Signals]) -> NoReturn:
    """Take one connection and serve it as its own process; ends the process whatever happens."""
    status = FAILED
    try:
        # The server ignores SIGCHLD to have its children reaped; a child that
        # kept that would see every program it runs exit with status 0.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        connection = pagemap = None
        if spare.die_with(server):
            pagemap = spare.own_pages()
            connection = _accept(spare.listener)
        if connection is not None:
            spare.outlive_server()
            os.write(tell, b"T")  # and keep `tell` open: its end tells the server the call ended
            log = os.dup(2)
            status = _serve_call(connection, spare, tell, pagemap, log)
            status = _serve_waiting(spare, server, log, status)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        os._exit(status)


def _serve_waiting(spare: Spare, server: int, log: int, status: int) -> int:
    """Serve the callers already waiting when a call ends, one after the other.

    Under load a caller is always waiting, and a process per call costs a
    fork, the copies of the pages the call writes and an exit, all on the
    CPU the calls share (docs/benchmarks.md has what they cost); a spare
    has no time to copy pages ahead then.  So a process whose call went
    well takes the next caller waiting, back in the server's namespaces,
    environment and log first, and never waits for one that is not there
    yet: that is the spare's job.  Should another process take that caller
    between the look and accept(), this one ends when `NEXT_CALLER_WAIT`
    runs out rather than stay as one more spare (in the rare case that the
    caller comes just then, it loses its connection and its launcher runs
    the call itself).  At most `CALLS_PER_PROCESS` calls, so that whatever a
    call leaves behind in its process cannot pile up.
    """
    for _ in range(CALLS_PER_PROCESS - 1):
        if status != 0:
            break
        _back_home(spare, log)
        connection = _next_waiting(spare, server)
        if connection is None:
            break
        spare.outlive_server()
        status = _serve_call(connection, spare, None, None, log)
    return status


def _back_home(spare: Spare, log: int) -> None:
    """Between two calls: the server's log, namespaces and environment again."""
    os.dup2(log, 2)
    mount, net = spare.namespaces
    enter(mount, CLONE_NEWNS)
    enter(net, CLONE_NEWNET)
    _replace_environment(spare.environment)


def _next_waiting(spare: Spare, server: int) -> socket.socket | None:
    """The connection of a caller waiting now, while the server lives; else None."""
    if not _caller_waiting(spare.listener) or not spare.die_with(server):
        return None
    signal.signal(signal.SIGALRM, lambda _signal, _frame: os._exit(0))
    signal.setitimer(signal.ITIMER_REAL, NEXT_CALLER_WAIT)
    connection = _accept(spare.listener)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    return connection


def _caller_waiting(listener: socket.socket) -> bool:
    """Whether a connection is waiting to be accepted now."""
    return bool(select.select([listener], [], [], 0)[0])


def _accept(listener: socket.socket) -> socket.socket | None:
    """The next connection; None after a failure (out of descriptors), and a pause."""
    try:
        connection, _ = listener.accept()
    except OSError as error:
        _log(f"accept failed: {error}")
        time.sleep(0.05)
        return None
    return connection


def _serve_call(
    connection: socket.socket, spare: Spare, tell: int | None, pagemap: int | None, log: int
) -> int:
    """Take the hand-over, run the plugin in the caller's place, report its status.

    Then account for the call (`Spare.account`), its duration from the
    connection's hand-over to its status; a call that raised counts as an
    internal error.  The server hears the call ended (`tell` closes) once the
    caller has its status, not at this process's exit, which first waits for
    the kernel to free its memory: the next spare is forked meanwhile.  Last,
    what a DEL left for after its answer (`plugin.Outcome.after_answer`),
    whose failure goes to the server's log (`log`), the caller having its
    answer.  A call a process serves after its first has no `tell`: the
    server heard of the first.
    """
    started = time.monotonic()
    try:
        environment, fds = _take_handover(connection, spare, started + spare.handover_timeout)
    except (Refused, OSError) as error:
        _log(f"hand-over refused: {error}")
        with contextlib.suppress(OSError):
            connection.sendall(bytes([NOT_ME]))
        spare.account(None, 0.0)
        return FAILED
    outcome = None
    try:
        _log(f"call handed to process {os.getpid()}")
        _become_caller(environment, fds)
        outcome = plugin.answer(answer_first=True)
    finally:
        if outcome is None:  # it raised
            outcome = plugin.Outcome(os.environ.get("CNI_COMMAND", ""), Code.INTERNAL)
        _report(connection, outcome.status)
        spare.account(outcome, time.monotonic() - started)
    if tell is not None:
        os.close(tell)
    if pagemap is not None:
        spare.teach(pagemap)
    if outcome.after_answer is not None:
        _after_answer(outcome.command, outcome.after_answer, log)
    return outcome.status


def _after_answer(command: str, work: Callable[[], None], log: int) -> None:
    try:
        work()
    except BaseException as error:
        message = f"netc-cni server: process {os.getpid()}: {command} after its answer: {error}\n"
        with contextlib.suppress(OSError):
            os.write(log, message.encode())


def _take_handover(
    connection: socket.socket, spare: Spare, deadline: float
) -> tuple[bytes, list[int]]:
    """Read and check the hand-over, wait for GO, enter the caller's namespaces, check it."""
    identity = spare.identity
    fds: list[int] = []
    pidfd = _peer(connection)
    try:
        header = _read(connection, len(MAGIC) + HEADER.size, deadline, fds)
        if not header.startswith(MAGIC):
            raise Refused("not a netc-cni hand-over")
        version, length = HEADER.unpack(header[len(MAGIC) :])
        if version != PROTOCOL:
            raise Refused(f"protocol {version}, not {PROTOCOL}")
        if length > MAX_PAYLOAD:
            raise Refused(f"{length} bytes, more than {MAX_PAYLOAD}")
        caller, _, environment = _read(connection, length, deadline, fds).partition(b"\0")
        if caller != identity:
            raise Refused(f"a launcher of {caller.decode(errors='replace')!r}")
        if fds:
            raise Refused("descriptors before GO")
        connection.sendall(bytes([READY]))
        if _read(connection, 1, deadline, fds) != bytes([GO]):
            raise Refused("no GO")
        if len(fds) != FDS:
            raise Refused(f"{len(fds)} descriptors, not {FDS}")
        _enter_namespaces(fds[STREAMS], fds[STREAMS + 1], spare.home)
        _check_caller(pidfd)
        connection.sendall(bytes([STARTED]))
    except BaseException:
        _close(fds)
        raise
    finally:
        os.close(pidfd)
    return environment, fds


def _enter_namespaces(net: int, mount: int, home: int) -> None:
    """Work in the caller's namespaces; programs still start from `home` (runtime.programs)."""
    call = os.dup(mount)
    try:
        enter(mount, CLONE_NEWNS)
        enter(net, CLONE_NEWNET)
    except NetnsError as error:
        os.close(call)
        raise Refused(f"cannot enter the caller's namespaces: {error}") from None
    programs.programs_from(home, call)
    if not any(isinstance(finder, _ImportsClosed) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ImportsClosed())


def _peer(connection: socket.socket) -> int:
    """A pidfd of the caller, once it is known to be root in this user namespace.

    The pidfd pins the caller, so `_check_caller` reads its /proc entry and
    not that of a process that got its PID meanwhile.  Where the caller is
    in no PID namespace of the server's (netc's agent has its own; the
    runtime calling the plugin is on the host), SO_PEERCRED gives PID 0 and
    only the socket can give a pidfd (Linux 6.5).
    """
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    pid, uid, _gid = struct.unpack("3i", credentials)
    if uid != 0:
        raise Refused(f"caller uid {uid} is not root")
    try:
        return int(connection.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD))
    except OSError:  # before Linux 6.5
        if pid <= 0:
            raise Refused(
                "the caller is not in this server's PID namespace, and this kernel "
                "gives no pidfd of a socket's peer (Linux 6.5)"
            ) from None
        try:
            return os.pidfd_open(pid)
        except OSError as error:
            raise Refused(f"caller {pid}: {error}") from None


def _check_caller(pidfd: int) -> None:
    """The caller is root in this user namespace and holds every capability this server holds.

    Otherwise the server would lend them: a root without CAP_NET_ADMIN, or
    root in a user namespace of its own, would have its calls run with the
    server's capabilities.  Read in the caller's mount namespace, whose /proc
    shows the caller (the PID the pidfd's fdinfo gives there), and the caller
    must still be alive afterwards: its PID was not reused meanwhile.  The
    caller's user namespace is compared by its /proc link where the server
    may follow it; a server without CAP_SYS_PTRACE (the agent's) may not
    follow a more capable caller's, and compares its uid and gid maps, which
    show the same as its own only for its own user namespace -- or for one a
    fully privileged root made with the whole identity map.
    """
    try:
        pid = _fdinfo_pid(pidfd)
        if pid <= 0:
            raise Refused("the caller is not in its mount namespace's /proc")
        if not _same_user_namespace(str(pid)):
            raise Refused(f"caller {pid} is root in another user namespace")
        lacking = _capabilities("self") & ~_capabilities(str(pid))
        if _fdinfo_pid(pidfd) != pid:  # -1 once it ended: its PID may be another's now
            raise Refused(f"caller {pid} ended during the check")
    except (OSError, ValueError) as error:
        raise Refused(f"cannot check the caller: {error}") from None
    if lacking:
        raise Refused(f"caller {pid} lacks capabilities {lacking:#x} this server holds")


def _fdinfo_pid(pidfd: int) -> int:
    """The PID of a pidfd's process in the PID namespace of this /proc.

    0: not in it; -1: it ended.
    """
    with open(f"/proc/self/fdinfo/{pidfd}") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise ValueError("no Pid in the pidfd's fdinfo")


def _same_user_namespace(process: str) -> bool:
    try:
        return _namespace("self", "user") == _namespace(process, "user")
    except PermissionError:
        return all(
            _read_text(f"/proc/self/{name}") == _read_text(f"/proc/{process}/{name}")
            for name in ("uid_map", "gid_map")
        )


def _read_text(path: str) -> str:
    with open(path) as file:
        return file.read()


def _namespace(process: str, kind: str) -> tuple[int, int]:
    status = os.stat(f"/proc/{process}/ns/{kind}")
    return status.st_dev, status.st_ino


def _capabilities(process: str) -> int:
    """The effective capability set of a process, from /proc."""
    with open(f"/proc/{process}/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise ValueError(f"no CapEff in /proc/{process}/status")


def _read(connection: socket.socket, size: int, deadline: float, fds: list[int]) -> bytes:
    """Exactly `size` bytes before `deadline`; descriptors passed along go into `fds`."""
    space = socket.CMSG_SPACE(FDS * struct.calcsize("i"))
    chunks: list[bytes] = []
    missing = size
    while missing:
        connection.settimeout(max(deadline - time.monotonic(), 0.001))
        data, ancillary, flags, _ = connection.recvmsg(min(missing, 1 << 20), space)
        fds += _descriptors(ancillary)
        if flags & socket.MSG_CTRUNC:
            raise Refused("more descriptors than a hand-over carries")
        if not data:
            raise Refused(f"the launcher went away {missing} bytes short")
        chunks.append(data)
        missing -= len(data)
    return b"".join(chunks)


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    width = struct.calcsize("i")
    found: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(payload) // width
            found += struct.unpack(f"{count}i", payload[: count * width])
    return found


def _become_caller(environment: bytes, fds: list[int]) -> None:
    """Take over the caller's streams and environment (namespaces are entered already)."""
    for target, fd in enumerate(fds[:STREAMS]):
        os.dup2(fd, target)
    _close(fds)
    _replace_environment(_environment(environment))


def _replace_environment(values: dict[bytes, bytes]) -> None:
    """Make `values`, and nothing else, the environment of this process."""
    os.environb.clear()
    os.environb.update(values)


def _environment(data: bytes) -> dict[bytes, bytes]:
    """NUL-separated KEY=VALUE entries, as bytes: the child sees what a cold plugin would."""
    pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
    return dict(pairs)


def _report(connection: socket.socket, status: int) -> None:
    """Flush and let go of the caller's streams, then send the exit status.

    A runtime reads the plugin's stdout to its end, and the end comes when
    every holder has closed it: this process too.  Left to the exit, that
    would wait for the kernel to free this process's memory (~16 MiB of
    pages of its own, see `Spare.own_pages`); the launcher ends at once
    when it has the status (and this process may serve the next call).
    A launcher gone is no error.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    with contextlib.suppress(OSError):
        nothing = os.open(os.devnull, os.O_RDWR)
        for fd in range(STREAMS):
            os.dup2(nothing, fd)
        os.close(nothing)
    with contextlib.suppress(BaseException):
        connection.sendall(bytes([status & 0xFF]))


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _log(message: str) -> None:
    """One line to the server's log (a child's log, until it takes over the caller's stderr)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"netc-cni server: {message}", file=sys.stderr, flush=True)
