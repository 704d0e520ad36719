"""A warm server's process that served a call takes callers already waiting, never waits."""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from types import SimpleNamespace

from runtime.cni import server

RETURNED = 3


def _outcome_in_child(listener: socket.socket, seen_waiting: bool) -> tuple[int, float]:
    """Run `_next_waiting` in a child with `select` saying a caller waits (or not) while
    none does: its exit status (RETURNED if it came back) and how long it took."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        if seen_waiting:  # another process took that caller between the look and accept()
            select.select = lambda readable, *_: (readable, [], [])
        spare = SimpleNamespace(listener=listener, die_with=lambda _server: True)
        server._next_waiting(spare, os.getppid())
        os._exit(RETURNED)
    while time.monotonic() - started < 5:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - started
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("still waiting in accept() after 5 s")


def test_a_process_that_lost_the_caller_it_saw_ends_instead_of_waiting(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tmp_path / "s"))
        listener.listen(1)
        code, took = _outcome_in_child(listener, seen_waiting=True)
        assert code == 0, "it came back from accept() with no caller"
        assert took >= server.NEXT_CALLER_WAIT
        code, _ = _outcome_in_child(listener, seen_waiting=False)
        assert code == RETURNED, "with no caller waiting it goes on (to end) at once"


def test_a_waiting_caller_is_taken(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tmp_path / "s"))
        listener.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as caller:
            caller.connect(str(tmp_path / "s"))
            spare = SimpleNamespace(listener=listener, die_with=lambda _server: True)
            connection = server._next_waiting(spare, os.getpid())
            assert connection is not None
            connection.sendall(b"x")
            assert caller.recv(1) == b"x"
            connection.close()


def test_a_call_that_failed_ends_its_process():
    assert server._serve_waiting(SimpleNamespace(), 1, 2, server.FAILED) == server.FAILED
