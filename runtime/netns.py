"""Working in another network namespace without leaving our own for long.

The plugin runs in the node's namespace.  To act inside a pod it enters the
pod's namespace only to open what must belong there -- a netlink socket, a
/proc/sys/net file -- and returns at once: a socket keeps the namespace it was
created in.  Entering uses setns(2) on this (single) thread; Python 3.11 has
no os.setns, so libc's is called through ctypes, loaded only when a sandbox is
touched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING

from compiler.errors import Code, NetcError

if TYPE_CHECKING:
    import ctypes

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000


class NetnsError(NetcError):
    """A namespace that cannot be opened or entered (the caller gave a bad path)."""

    code = Code.BAD_ENVIRONMENT


@cache
def _libc() -> tuple[ctypes.CDLL, Callable[[], int]]:
    """libc, and how to read the errno its calls leave."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True), ctypes.get_errno


def prepare() -> None:
    """Load libc's setns now: a process that forks a child per call does it once, not each child."""
    _libc()


def enter(fd: int, kind: int = CLONE_NEWNET) -> None:
    """setns(2): move this thread into the namespace `fd` refers to."""
    libc, get_errno = _libc()
    if libc.setns(fd, kind) != 0:
        raise NetnsError(f"setns: {os.strerror(get_errno())}")


class Netns:
    """An open handle on a network namespace path (e.g. /run/netns/pod1)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise NetnsError(f"cannot open network namespace {path}: {error.strerror}") from None

    def close(self) -> None:
        """Release the handle."""
        os.close(self.fd)

    def is_host(self) -> bool:
        """True when the path is the node's own namespace: this process's, or init's.

        Neither is ever a pod's sandbox; acting on one as a pod would rewire
        the node.
        """
        theirs = os.fstat(self.fd)
        for own in ("/proc/self/ns/net", "/proc/1/ns/net"):
            try:
                mine = os.stat(own)
            except OSError:
                continue
            if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
                return True
        return False

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body inside this namespace, then come back."""
        home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            enter(self.fd)
            try:
                yield
            finally:
                enter(home)
        finally:
            os.close(home)


def netns_path(name: str) -> str:
    """A namespace name under /run/netns (where `ip netns` mounts them), or a path as given."""
    return name if os.path.isabs(name) else f"/run/netns/{name}"


@contextlib.contextmanager
def node_namespace(name: str | None) -> Iterator[None]:
    """Run the body in the node's network namespace: a name under /run/netns or a path.

    None means this process's own namespace (on a real node); tests and
    `--node-netns` name a namespace that plays the node.
    """
    if name is None:
        yield
        return
    node = Netns(netns_path(name))
    try:
        with node.entered():
            yield
    finally:
        node.close()
