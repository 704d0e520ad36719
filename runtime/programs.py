"""Running the few external programs the runtime needs: iptables-restore, conntrack.

A program gets its input from a memfd written in full before it starts and
writes its output to memfds: nothing can deadlock on a full pipe, so no
thread or selector is needed to feed and drain it.  `subprocess` would bring
both, and its imports into every Python plugin's start-up.

Programs come from fixed directories and start with a fixed environment:
nothing of the caller's -- PATH, LD_PRELOAD, XTABLES_LOCKFILE -- chooses or
changes what runs as root.  A warm server's child, which works in its
caller's mount namespace, starts them from the server's own
(`programs_from`): a caller's mount namespace may hold anything at
/usr/sbin/iptables-restore, or under the libraries it loads.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from time import perf_counter

from compiler.errors import Code, NetcError
from runtime.files import write_all
from runtime.netns import CLONE_NEWNS, enter
from runtime.spent import SECONDS

SEARCH_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin")
"""Where programs are looked for, and the only places: runtimes exec plugins with a
reduced PATH, and a caller's PATH must not choose what runs."""
ENVIRONMENT = {"PATH": ":".join(SEARCH_PATH)}
"""The whole environment of every program started."""

_mount_namespaces: list[int] = []
"""[where programs start, where the call works], once `programs_from` set them."""


def programs_from(home: int, call: int) -> None:
    """Start every program in mount namespace `home`, then come back to `call`.

    For a warm server's child: `call` is the caller's mount namespace, where
    the plugin's paths are; `home` the server's, whose programs are trusted.
    `call` is this module's to close: a child serving calls one after the
    other closes the last caller's when it is given the next.
    """
    if _mount_namespaces:
        os.close(_mount_namespaces[1])
    _mount_namespaces[:] = [home, call]


@contextlib.contextmanager
def _in_home() -> Iterator[None]:
    if not _mount_namespaces:
        yield
        return
    home, call = _mount_namespaces
    enter(home, CLONE_NEWNS)
    try:
        yield
    finally:
        enter(call, CLONE_NEWNS)


class ProgramMissing(NetcError):
    """A program the operation needs is not installed."""

    code = Code.OPERATION_FAILED


class ProgramFailed(NetcError):
    """A program exited with an error status."""

    code = Code.OPERATION_FAILED

    def __init__(self, argv: Sequence[str], status: int, stderr: bytes) -> None:
        text = stderr.decode(errors="replace").strip()
        super().__init__(f"{os.path.basename(argv[0])} failed: {text or f'status {status}'}")
        self.status = status


def find(name: str) -> str:
    """The absolute path of a program, looked for in the sbin and bin directories."""
    for directory in SEARCH_PATH:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise ProgramMissing(f"{name} is not installed (searched {':'.join(SEARCH_PATH)})")


def run(name: str, *args: str, stdin: bytes = b"", accept: tuple[int, ...] = (0,)) -> bytes:
    """Run a program to completion; its stdout, or `ProgramFailed` for other statuses."""
    return start(name, *args, stdin=stdin, accept=accept).wait()


class Running:
    """A program started by `start`, to be waited for exactly once with `wait`."""

    def __init__(self, argv: list[str], stdin: bytes, accept: tuple[int, ...]) -> None:
        started = perf_counter()
        self.argv = argv
        self.accept = accept
        self.streams = [os.memfd_create(s, os.MFD_CLOEXEC) for s in ("stdin", "stdout", "stderr")]
        try:
            write_all(self.streams[0], stdin)
            os.lseek(self.streams[0], 0, os.SEEK_SET)
            self.pid = os.posix_spawn(
                argv[0],
                argv,
                ENVIRONMENT,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(self.streams)
                ],
            )
        except BaseException:
            self._close()
            raise
        SECONDS["programs"] += perf_counter() - started

    def wait(self) -> bytes:
        """Its stdout once it has ended, or `ProgramFailed` for a status not accepted."""
        try:
            started = perf_counter()
            status = _wait(self.pid)
            SECONDS["programs"] += perf_counter() - started
            if status not in self.accept:
                raise ProgramFailed(self.argv, status, _read_all(self.streams[2]))
            return _read_all(self.streams[1])
        finally:
            self._close()

    def _close(self) -> None:
        for fd in self.streams:
            os.close(fd)
        self.streams = []


def start(name: str, *args: str, stdin: bytes = b"", accept: tuple[int, ...] = (0,)) -> Running:
    """Start a program that runs beside the caller, which goes on until it `wait`s for it."""
    with _in_home():
        return Running([find(name), *args], stdin, accept)


def _wait(pid: int) -> int:
    """The exit status of a child (negative: the signal that ended it); killed if we fail."""
    try:
        _, status = os.waitpid(pid, 0)
    except BaseException:  # the call's deadline, most likely: leave no program running
        _kill(pid)
        raise
    return os.waitstatus_to_exitcode(status)


def _kill(pid: int) -> None:
    """End a child now and collect it."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
