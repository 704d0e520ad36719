"""The agent's HTTP endpoint on the node's loopback: /livez, /readyz, /metrics.

The agent has the host's network, so any local user of the node can
connect to it.  What they must not be able to do is silence the probes --
the kubelet would restart a working agent, or keep a node unready -- nor
take descriptors the agent needs for its work.  Hence:

- One thread and a selector, not a thread per connection: a connection
  that sends nothing costs a descriptor and a few bytes, never a thread
  blocked in read(), and every connection that has sent its request is
  answered in the turn it arrives, whatever the idle ones do.
- At most `MAX_CONNECTIONS` at once: one more closes the oldest, so the
  descriptors taken are bounded whatever is opened.  At most
  `ACCEPTS_PER_TURN` are accepted in a turn, so a connection survives
  several turns of a flood -- a probe, which sends its request as soon as
  it is connected, is read and answered before it would be closed.
- `REQUEST_TIMEOUT` seconds for a connection to send its request and take
  the answer; a request larger than `MAX_REQUEST` bytes is refused.
- A failed accept (descriptors exhausted by something else) pauses
  accepting for `ACCEPT_PAUSE` seconds rather than spinning on a listener
  that stays readable.
- A port someone else holds stops nothing: the agent works on, says that
  its endpoint is unavailable and tries to listen again every
  `BIND_RETRY` seconds.

The alternative, a bounded pool of threads with per-request timeouts,
lets as many idle connections as the pool has threads hold every worker
for a timeout each: an attacker reconnecting as fast keeps the probes
unanswered.  The selector has no such number.
"""

from __future__ import annotations

import contextlib
import http
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CONNECTIONS = 256
ACCEPTS_PER_TURN = 32
REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 8192
"""Bytes of a request line and its headers (the probes and a scraper send a few hundred)."""
ACCEPT_PAUSE = 0.1
BIND_RETRY = 5.0
BACKLOG = 128
TURN = 0.5
"""Seconds a turn waits at most, so that `close` is noticed."""

Reply = tuple[int, str, bytes]
"""Status, content type and body of an answer."""
Answer = Callable[[str], Reply]
"""The answer to a GET of a path."""


@dataclass
class _Connection:
    sock: socket.socket
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    reply: bytes = b""
    """What is left to send, once the request was read."""
    answered: bool = False
    """The reply was sent: what still comes is read and dropped until the client closes (a
    close with input unread would reset the connection, and the client could lose the
    reply)."""


class Endpoint:
    """The endpoint's thread: listens on (`host`, `port`) once it can, answers with `answer`.

    `say` logs a line (that it listens, or cannot yet).  Port 0 takes any
    free port: `port` says which once `bound` is set.
    """

    def __init__(self, host: str, port: int, answer: Answer, say: Callable[[str], None]) -> None:
        self.host = host
        self.port = port
        self.answer = answer
        self.say = say
        self.bound = threading.Event()
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, _Connection] = {}
        """In the order they were accepted: the first is the oldest."""
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, daemon=True, name="health")

    def start(self) -> Endpoint:
        """Start the thread: it listens (or keeps trying to), then serves."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, and close the listener and every connection."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        listener = self._listen()
        if listener is None:
            return
        try:
            self._serve(listener)
        finally:
            for connection in list(self._connections.values()):
                self._drop(connection)
            self._selector.close()
            listener.close()

    def _listen(self) -> socket.socket | None:
        """The listening socket, once the port is free; None if stopped before."""
        said = ""
        while not self._stopping.is_set():
            try:
                listener = socket.create_server((self.host, self.port), backlog=BACKLOG)
            except OSError as error:
                if str(error) != said:
                    reason = os.strerror(error.errno) if error.errno else str(error)
                    self.say(
                        f"health endpoint unavailable: cannot listen on "
                        f"{self.host}:{self.port}: {reason}; trying again every "
                        f"{BIND_RETRY:.0f} s"
                    )
                    said = str(error)
                self._stopping.wait(BIND_RETRY)
                continue
            listener.setblocking(False)
            self.port = listener.getsockname()[1]
            self.say(
                f"health endpoint on http://{self.host}:{self.port} (/livez, /readyz, /metrics)"
            )
            self.bound.set()
            return listener
        return None

    def _serve(self, listener: socket.socket) -> None:
        self._selector.register(listener, selectors.EVENT_READ)
        paused_until = None
        while not self._stopping.is_set():
            now = time.monotonic()
            if paused_until is not None and now >= paused_until:
                self._selector.register(listener, selectors.EVENT_READ)
                paused_until = None
            for key, events in self._selector.select(self._wait(now, paused_until)):
                if key.fileobj is listener:
                    if not self._accept(listener):
                        self._selector.unregister(listener)
                        paused_until = time.monotonic() + ACCEPT_PAUSE
                else:
                    self._step(key.data, events)
            self._expire(time.monotonic())

    def _wait(self, now: float, paused_until: float | None) -> float:
        """Seconds until the next deadline, the end of a pause, or the end of a turn."""
        moments = [c.deadline for c in self._connections.values()]
        if paused_until is not None:
            moments.append(paused_until)
        return max(0.0, min([now + TURN, *moments]) - now)

    def _accept(self, listener: socket.socket) -> bool:
        """Up to `ACCEPTS_PER_TURN` connections; False when accept() failed (pause)."""
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return True
            except OSError:  # EMFILE, ENFILE, ENOBUFS: free one, and let the rest wait
                if self._connections:
                    self._drop(next(iter(self._connections.values())))
                return False
            sock.setblocking(False)
            if len(self._connections) >= MAX_CONNECTIONS:
                self._drop(next(iter(self._connections.values())))
            connection = _Connection(sock, time.monotonic() + REQUEST_TIMEOUT)
            self._connections[sock] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)
        return True

    def _step(self, connection: _Connection, events: int) -> None:
        if connection.sock not in self._connections:  # closed earlier in this turn (for a
            return  # newcomer, as the oldest)
        try:
            if events & selectors.EVENT_READ and not connection.reply:
                self._read(connection)
            if connection.reply:
                self._write(connection)
        except OSError:  # reset by the peer, and the like
            self._drop(connection)

    def _read(self, connection: _Connection) -> None:
        data = connection.sock.recv(4096)
        if not data:
            self._drop(connection)
            return
        if connection.answered:
            return
        connection.received += data
        head, ends, _ = bytes(connection.received).partition(b"\r\n\r\n")
        if ends:
            connection.reply = self._respond(head)
        elif len(connection.received) > MAX_REQUEST:
            connection.reply = _response(431, "text/plain; charset=utf-8", b"request too large\n")
        if connection.reply:
            self._selector.modify(connection.sock, selectors.EVENT_WRITE, connection)

    def _write(self, connection: _Connection) -> None:
        with contextlib.suppress(BlockingIOError):
            sent = connection.sock.send(connection.reply)
            connection.reply = connection.reply[sent:]
        if not connection.reply:
            connection.answered = True
            connection.sock.shutdown(socket.SHUT_WR)
            self._selector.modify(connection.sock, selectors.EVENT_READ, connection)

    def _respond(self, head: bytes) -> bytes:
        """The response to a request's head (request line and headers)."""
        words = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            return _response(400, "text/plain; charset=utf-8", b"bad request\n")
        method, target, _ = words
        if method not in ("GET", "HEAD"):
            return _response(405, "text/plain; charset=utf-8", b"GET or HEAD\n")
        try:
            status, content_type, body = self.answer(target.split("?", 1)[0])
        except Exception as error:  # a bug answers 500, never ends the endpoint
            self.say(f"health endpoint: {target}: {type(error).__name__}: {error}")
            status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        return _response(status, content_type, body, with_body=method == "GET")

    def _expire(self, now: float) -> None:
        for connection in [c for c in self._connections.values() if c.deadline <= now]:
            self._drop(connection)

    def _drop(self, connection: _Connection) -> None:
        self._connections.pop(connection.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.sock.close()


def _response(status: int, content_type: str, body: bytes, *, with_body: bool = True) -> bytes:
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + (body if with_body else b"")
