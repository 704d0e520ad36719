"""A warm server's process that served a call takes callers already waiting, never waits."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from runtime.cni import server

RETURNED = 3


@contextlib.contextmanager
def _listening(tmp_path, backlog: int) -> Iterator[socket.socket]:
    """A server's listening socket, at `tmp_path`/s."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tmp_path / "s"))
        listener.listen(backlog)
        yield listener


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
    with _listening(tmp_path, 1) as listener:
        code, took = _outcome_in_child(listener, seen_waiting=True)
        assert code == 0, "it came back from accept() with no caller"
        assert took >= server.NEXT_CALLER_WAIT
        code, _ = _outcome_in_child(listener, seen_waiting=False)
        assert code == RETURNED, "with no caller waiting it goes on (to end) at once"


def test_a_waiting_caller_is_taken(tmp_path):
    with (
        _listening(tmp_path, 1) as listener,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as caller,
    ):
        caller.connect(str(tmp_path / "s"))
        spare = SimpleNamespace(listener=listener, die_with=lambda _server: True)
        connection = server._next_waiting(spare, os.getpid())
        assert connection is not None
        connection.sendall(b"x")
        assert caller.recv(1) == b"x"
        connection.close()


def test_a_call_that_failed_ends_its_process():
    assert server._serve_waiting(SimpleNamespace(), 1, 2, server.FAILED) == server.FAILED


def _fork_after(tmp_path, children: int, taken_by_another: bool = False) -> float:
    """Seconds the server waits before forking for a caller waiting while its spare's call
    runs, with `children` children; with `taken_by_another`, a process takes that caller 5 ms
    in, and the spare's call ends 0.2 s in."""
    with _listening(tmp_path, 4) as listener:
        ended, running = os.pipe()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as caller:
            caller.connect(str(tmp_path / "s"))
            spare = SimpleNamespace(listener=listener, _children=lambda: children)
            started = time.monotonic()
            with ThreadPoolExecutor(1) as pool:
                try:
                    waited = pool.submit(_returned_at, spare, ended)
                    if taken_by_another:
                        time.sleep(0.005)
                        listener.accept()[0].close()
                        time.sleep(0.2)
                        os.close(running)
                        running = -1
                    returned = waited.result(timeout=5)
                finally:
                    if running >= 0:
                        os.close(running)  # the call ends: the server stops waiting
        os.close(ended)
        return returned - started


def _returned_at(spare: SimpleNamespace, ended: int) -> float:
    server.Spare._until_ended_or_called(spare, ended)  # type: ignore[arg-type]
    return time.monotonic()


def test_a_server_with_few_calls_forks_at_once_for_a_waiting_caller(tmp_path, monkeypatch):
    """A grace of 10 s it does not take: no loaded machine delays a thread that long."""
    monkeypatch.setattr(server, "FORK_GRACE_MS", 10_000)
    assert _fork_after(tmp_path, children=2) < 5


def test_a_busy_server_leaves_a_waiting_caller_to_the_processes_ending_their_calls(tmp_path):
    assert _fork_after(tmp_path, children=30) >= server.FORK_GRACE_MS / 1000


def test_a_caller_another_process_took_makes_no_fork(tmp_path):
    """Once a process ending its call took the caller, the server waits for its spare's call."""
    assert _fork_after(tmp_path, children=30, taken_by_another=True) >= 0.2
