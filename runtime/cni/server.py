"""The warm plugin server: netc-cni without Python's start-up on every call.

A CNI plugin is a new process per call, and a Python one spends most of its
time importing before it does any work (docs/benchmarks.md has the numbers).
`netc serve-cni` imports the plugin once and waits on a unix socket; the
launcher `netc install-plugin --warm-socket PATH` writes connects there and
hands over the call:

    launcher  --connect-->  server  --fork-->  child
      sends: its environment, and as SCM_RIGHTS its stdin, stdout, stderr and
             its network and mount namespaces
                                             child: enters both namespaces,
                                             takes over stdin/stdout/stderr,
                                             runs the plugin, reports the exit
                                             status back to the launcher

The child is a fork of a process that has imported everything, so a call
costs a fork instead of an interpreter start.  It runs in the caller's
namespaces with the caller's environment and standard streams: the runtime
cannot tell the difference.  When the server is not running, or was started
from another netc, the launcher runs the plugin itself (the cold path), so
the server is an accelerator, never a dependency.

The socket is created mode 0600 and callers must be root (SO_PEERCRED).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys

from runtime.cni import plugin
from runtime.netns import CLONE_NEWNET, enter

CLONE_NEWNS = 0x00020000
STREAMS = 3
NOT_ME = 254
"""Status telling the launcher to run the plugin itself (another netc's server)."""
MAX_ENVIRONMENT = 1 << 20


def serve(path: str, identity: str) -> None:
    """Accept calls on `path` until killed; `identity` must match the launcher's."""
    _preload()
    listener = _listen(path)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print(f"netc-cni server listening on {path}", file=sys.stderr, flush=True)
    while True:
        connection, _ = listener.accept()
        try:
            _take_call(connection, identity)
        except OSError as error:
            print(f"netc-cni server: call dropped: {error}", file=sys.stderr, flush=True)
        finally:
            connection.close()


def _preload() -> None:
    """Import (and warm the caches of) everything a call could need, so children never do."""
    import subprocess  # noqa: F401 - runtime.programs imports it on demand

    import runtime.cni.commands  # noqa: F401 - the plugin imports it per call (and the handlers)
    from compiler import ir_codec

    ir_codec.warm()


def _listen(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _take_call(connection: socket.socket, identity: str) -> None:
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    message, fds = _receive(connection)
    caller_identity, _, environment = message.partition(b"\0\0")
    if uid != 0 or caller_identity.decode() != identity or len(fds) != STREAMS + 2:
        for fd in fds:
            os.close(fd)
        connection.sendall(bytes([NOT_ME]))
        return
    child = os.fork()
    if child == 0:
        _child(connection, environment, fds)
    for fd in fds:
        os.close(fd)
    print(f"netc-cni server: call handed to process {child}", file=sys.stderr, flush=True)


def _receive(connection: socket.socket) -> tuple[bytes, list[int]]:
    size = struct.calcsize("i") * (STREAMS + 2)
    data, ancillary, _flags, _address = connection.recvmsg(
        MAX_ENVIRONMENT, socket.CMSG_SPACE(size))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(payload) // struct.calcsize("i")
            fds += struct.unpack(f"{count}i", payload[: count * struct.calcsize("i")])
    return data, fds


def _child(connection: socket.socket, environment: bytes, fds: list[int]) -> None:
    """Become the plugin process of the caller; never returns."""
    status = 1
    try:
        # The server ignores SIGCHLD to have its children reaped; a child that
        # kept that would see every program it runs exit with status 0.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        *streams, net, mount = fds
        enter(mount, CLONE_NEWNS)
        enter(net, CLONE_NEWNET)
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
        os.environ.clear()
        os.environ.update(_environment(environment))
        status = plugin.main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        connection.sendall(bytes([status]))
        os._exit(status)


def _environment(data: bytes) -> dict[str, str]:
    pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode(errors="replace") for key, value in pairs}
