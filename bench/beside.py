"""A process of its own for the lists a sandbox attaches beside its pod network.

containerd attaches a sandbox's networks at once, each in a goroutine of its
own (go-cni), and goroutines share no lock.  Threads of the harness share
Python's: two threads made for each ADD, one list each, held up the
pod network's by the other's start and its end, a cost no runtime has
(docs/benchmarks.md has what it was).  So the harness runs the lists beside
in one process forked for the purpose, which waits for them on a pipe, and
the pod network's list in the harness's thread.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import traceback
from collections.abc import Callable
from typing import Any

LENGTH = struct.Struct("=Q")


class Beside:
    """A forked process that runs calls sent to it, one after the other, and returns results.

    A call and its value travel pickled, so both must pickle: module-level
    functions and plain data (a `functools.partial` of `runtime.driver.add`
    and its arguments).  Fork it while the harness has no other thread.
    """

    def __init__(self) -> None:
        requests, self._requests = os.pipe()
        self._replies, replies = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _keep_only(0, 1, 2, requests, replies)
            _serve(requests, replies)
        os.close(requests)
        os.close(replies)
        self._pending = 0

    def start(self, call: Callable[[], Any]) -> None:
        """Have the process run `call` now; `result` waits for it."""
        _send(self._requests, call)
        self._pending += 1

    def result(self) -> Any:
        """The value of the oldest call started and not collected; its exception raised here."""
        if not self._pending:
            raise RuntimeError("no call started")
        self._pending -= 1
        ok, value = _receive(self._replies)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """End the process (it reads the end of its requests) and reap it."""
        os.close(self._requests)
        os.close(self._replies)
        os.waitpid(self.pid, 0)

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _keep_only(*kept: int) -> None:
    """Close every other descriptor: a copy of a pipe's end held here would keep its reader
    from seeing the end (a plugin's stdout, the harness's own pipes)."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in kept:
            with contextlib.suppress(OSError):
                os.close(fd)


def _serve(requests: int, replies: int) -> None:
    """The process's life: each request run and answered until the requests end; never returns."""
    try:
        while (request := _receive_bytes(requests)) is not None:
            try:
                reply: tuple[bool, Any] = (True, pickle.loads(request)())
            except Exception as error:  # handed to the harness, which raises it
                reply = (False, _picklable(error))
            _send(replies, reply)
    finally:
        os._exit(0)


def _picklable(error: Exception) -> Exception:
    """`error` itself if it pickles, else a RuntimeError with its traceback."""
    try:
        pickle.dumps(error)
    except Exception:
        return RuntimeError("".join(traceback.format_exception(error)))
    return error


def _send(fd: int, value: object) -> None:
    data = pickle.dumps(value)
    os.write(fd, LENGTH.pack(len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _receive_bytes(fd: int) -> bytes | None:
    """The next message, or None at the end of the messages."""
    try:
        (length,) = LENGTH.unpack(_read_exactly(fd, LENGTH.size))
    except EOFError:
        return None
    return _read_exactly(fd, length)


def _receive(fd: int) -> Any:
    message = _receive_bytes(fd)
    if message is None:
        raise EOFError("the process running calls beside ended")
    return pickle.loads(message)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError("the other end closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
