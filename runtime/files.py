"""Crash-safe files and locks for the runtime's on-disk state.

Every state file is written to a temporary name and then renamed or linked
into place, so a process that dies leaves either the old file or the new one.
Reservations are also flushed to disk before they get their name: after a
power loss a file system may keep a name whose data never reached the disk,
an empty reservation -- the host-local bug #498.  Files that are hints or live
on tmpfs (records, markers, last_reserved_ip) skip that flush: losing one is
harmless, and each flush costs milliseconds on every ADD.

Locks are flock(2) on a file, released by the kernel if the plugin dies.  A
wait for one is bounded (`LOCK_WAIT`): a call that cannot get it fails with
CNI code 11, "try again later", naming the process that holds it, instead of
hanging the runtime.  A process never takes a lock it already holds: flock
through a second descriptor would wait for itself.  The holder of a lock may
remove its file (an attachment's lock goes with the attachment): whoever
waited on the removed file finds that its path names another file, or none,
and locks again by the path.

A temporary is named after the file it becomes.  A file that only holders
of its lock write (an attachment's record, a host-port claim, IPAM's boot
marker) has one fixed temporary (`locked_temporary`): the next holder
removes what a killed writer left by its name, without listing a directory
that holds a file per pod.  Other files' temporaries also carry the
writer's pid and a random suffix, since their writers may overlap.

flock works on a descriptor opened read-only, so a lock file others may read
is a lock any local user may hold, freezing every ADD, DEL and GC of the
network.  Locks are therefore 0600, fixed when an older one is found 0644,
and the directories netc creates for its state are 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator

from compiler.errors import Code, NetcError
from runtime.spent import LOCK_WAITS

TEMPORARY_PREFIX = ".netc-tmp-"
LOCK_WAIT = 30.0
"""Seconds a call waits for a lock before it answers "try again later"."""
WAIT_LOGGED = 0.001
"""Seconds of waiting for a lock worth a line in a call's log."""
_POLL_CAP = 0.016
_STEM_MAX = 64
"""Characters of the target's name a temporary's name carries."""

_held: set[tuple[int, int]] = set()
"""(device, inode) of every lock this process holds."""


class LockBusy(NetcError):
    """Another process held a lock for longer than a call may wait."""

    code = Code.TRY_AGAIN


def locked_temporary(target: str) -> str:
    """The one temporary of a file that only the holders of its lock write."""
    directory, name = os.path.split(target)
    return os.path.join(directory or ".", f"{TEMPORARY_PREFIX}{name}")


def _temporary(
    target: str,
    content: bytes,
    durable: bool,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    *,
    locked: bool = False,
) -> str:
    """A complete file under a temporary name beside `target`; nothing is left when writing fails.

    `owner` (uid, gid) is given where permitted (a user's file, rewritten by
    root).  `locked`: the caller holds the lock of every writer of `target`,
    and the temporary is its fixed one.  What a killed writer left there is
    removed, never opened: it may be linked to the target already.
    """
    if locked:
        path = locked_temporary(target)
        remove(path)
    else:
        directory, name = os.path.split(target)
        path = os.path.join(
            directory or ".",
            f"{TEMPORARY_PREFIX}{name[:_STEM_MAX]}-{os.getpid()}-{os.urandom(4).hex()}",
        )
    try:
        _write(path, os.O_EXCL, content, durable=durable, mode=mode, owner=owner)
    except BaseException:
        remove(path)
        raise
    return path


def _write(
    path: str,
    flags: int,
    content: bytes,
    *,
    durable: bool,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    cut: bool = False,
) -> None:
    """Open `path` (created, with `flags`), write `content`, flush it if `durable`, close it.

    With `cut`, what followed the content of a longer file before goes.
    An OSError names `path`: a write on a full disk names no file itself.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | flags, mode)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, *owner)
        write_all(fd, content)
        if cut:
            os.ftruncate(fd, len(content))
        if durable:
            os.fsync(fd)
    except OSError as error:
        if error.filename is None:
            error.filename = path
        raise
    finally:
        os.close(fd)


def private_directory(path: str) -> None:
    """Create `path`, and each missing parent, readable by root alone (0700).

    A directory that exists is left as it is (the IPAM directory may be
    shared with host-local).
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        private_directory(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)


def write_all(fd: int, content: bytes) -> None:
    """All of `content` to `fd`, however few bytes each write takes."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


def write_atomically(
    path: str,
    content: bytes,
    *,
    durable: bool,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    locked: bool = False,
) -> None:
    """Replace `path` with `content` in one step.

    `durable` flushes the data before the rename, for state on disk that a
    crash must not leave empty (a conflist a runtime may read at any moment);
    hints and files on tmpfs skip the flush.  `locked`: every writer of
    `path` holds its lock, this caller too (its temporary is the fixed one).
    """
    temporary = _temporary(path, content, durable, mode, owner, locked=locked)
    try:
        os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise


def create_exclusively(path: str, content: bytes) -> bool:
    """Create `path` holding `content` unless it exists; True when this call created it.

    link(2) fails with EEXIST when the name is taken, which makes it the
    reservation primitive, and the file is complete before it has a name.
    Call it holding the lock every writer of `path` holds: its temporary is
    the fixed one (`locked_temporary`).
    """
    temporary = _temporary(path, content, durable=True, locked=True)
    try:
        return link_exclusively(temporary, path)
    finally:
        os.unlink(temporary)


def link_exclusively(source: str, path: str) -> bool:
    """Give the complete file `source` the name `path` too, unless it is taken; True if given."""
    try:
        os.link(source, path)
    except FileExistsError:
        return False
    return True


def overwrite(path: str, content: bytes) -> None:
    """`content` as the whole of `path` (0600), written in place, not flushed.

    For a file a crash may leave empty, stale or torn at little cost: a hint
    (IPAM's last reserved address: a longer search), or a reservation staged
    before it is linked into place (freed after the boot).  Creating a file
    on a disk costs an inode, which `write_atomically`'s temporary does on
    every write.
    Written over its old content, then cut to its length, not truncated
    first: ext4 flushes a file truncated and written again at its close
    (auto_da_alloc; docs/benchmarks.md has what that cost).
    """
    _write(path, 0, content, durable=False, cut=True)


def read_text(path: str) -> str | None:
    """A small file's text, or None when it is missing."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def remove(path: str) -> bool:
    """Delete a file; False when it was not there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def locked(
    path: str, wait: float = LOCK_WAIT, *, logged_as: str | None = None, kind: str | None = None
) -> Iterator[float]:
    """Hold an exclusive flock on `path` (created if needed) for the body; the seconds waited.

    Waits at most `wait` seconds (`LockBusy`); taking a lock this process
    already holds is a bug, refused at once rather than waited for forever.
    The body may remove the file (see the module's docstring).  A call's
    locks are `logged_as` what they guard: a wait of `WAIT_LOGGED` or more
    is a line on stderr, since calls that queue spend their time there; and
    counted in `spent.LOCK_WAITS` under their `kind` (a few: network, attachment,
    ...), for the agent's metrics.
    """
    private_directory(os.path.dirname(path))
    started = time.monotonic()
    waited = False
    while True:
        fd, key = _lock_file(path)
        try:
            waited = _acquire(fd, path, started, wait) or waited
            if _names(path, key):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it: lock the file the path names now
        waited = True
    seconds = time.monotonic() - started if waited else 0.0
    if kind is not None:
        LOCK_WAITS[kind] = LOCK_WAITS.get(kind, 0.0) + seconds
    if logged_as is not None and seconds >= WAIT_LOGGED:
        print(
            f"netc-cni: waited {seconds * 1000:.1f} ms for the lock of {logged_as}", file=sys.stderr
        )
    _held.add(key)
    try:
        yield seconds
    finally:
        _held.discard(key)
        os.close(fd)


def _lock_file(path: str) -> tuple[int, tuple[int, int]]:
    """The lock file opened (0600), with its (device, inode); refused if this process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        status = os.fstat(fd)
        if status.st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)  # an older netc made it 0644: anyone could have held it
        key = (status.st_dev, status.st_ino)
        if key in _held:
            raise NetcError(f"{path} is already locked by this call", Code.INTERNAL)
    except BaseException:
        os.close(fd)
        raise
    return fd, key


def _names(path: str, key: tuple[int, int]) -> bool:
    """Whether `path` still names the file (device, inode) `key`."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return False
    return (status.st_dev, status.st_ino) == key


def _acquire(fd: int, path: str, started: float, wait: float) -> bool:
    """Flock by `started` + `wait`: poll, backing off from 1 ms to `_POLL_CAP`; True if it waited.

    A lock taken at the first try was not waited for, however slow the
    system call itself was: a traced or loaded call must not log a wait.
    """
    if _try_flock(fd):
        return False
    deadline = started + wait
    delay = 0.001
    while True:
        time.sleep(delay)
        delay = min(delay * 2, _POLL_CAP)
        if _try_flock(fd):
            return True
        if time.monotonic() >= deadline:
            raise LockBusy(
                f"{path} has been locked by {lock_holder(fd)} for more than {wait:g} s",
                details="try again later",
            )


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_holder(fd: int) -> str:
    """Who holds the flock on the file `fd` is open on, from /proc/locks."""
    status = os.fstat(fd)
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        with open("/proc/locks") as table:
            lines = table.read().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            return _describe_process(fields[4])
    return "another process"


def _describe_process(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"process {pid}" + (f" ({command[:120]})" if command else "")
