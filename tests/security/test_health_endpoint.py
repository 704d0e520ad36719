"""The agent's health endpoint against a local user who connects to it.

Any local user of a node reaches 127.0.0.1 of the node, where the agent
listens (runtime/health.py).  Each attack here is performed against an
endpoint on the loopback of the machine, on a free port; the full-size ones
-- 1100 idle connections from `nobody`, a port taken before the agent
starts -- against a running agent in a simulated node, in
tests/rollout/test_agent_watching.py.  Nothing here needs root.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from runtime import health
from runtime.health import Endpoint, Reply


def _answer(path: str) -> Reply:
    if path == "/boom":
        raise RuntimeError("a bug")
    return 200, "text/plain", f"you asked {path}\n".encode()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    said: list[str] = []
    served = Endpoint("127.0.0.1", 0, _answer, said.append).start()
    served.said = said  # type: ignore[attr-defined]
    assert served.bound.wait(10)
    try:
        yield served
    finally:
        served.close()


def _connect(endpoint: Endpoint) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", endpoint.port), timeout=10)
    return connection


def _exchange(endpoint: Endpoint, request: bytes) -> bytes:
    """Send `request`, and read the answer to its end (the endpoint closes every connection)."""
    with _connect(endpoint) as connection:
        connection.sendall(request)
        return _read_all(connection)


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_get_is_answered_and_a_head_gets_the_head_alone(endpoint):
    answer = _exchange(endpoint, b"GET /livez?verbose HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nyou asked /livez\n")
    assert b"Content-Length: 17\r\n" in answer and b"Connection: close\r\n" in answer
    head = _exchange(endpoint, b"HEAD /livez HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 17\r\n" in head


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /livez HTTP/1.1\r\n\r\n", b"405"),
        (b"GET /livez\r\n\r\n", b"400"),
        (b"\x00\xff garbage \x80\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n", b"431"),
        (b"GET /livez HTTP/1.1\r\n" + b"X-Filler: yes\r\n" * 1000, b"431"),
    ],
)
def test_a_malformed_or_oversized_request_gets_an_error_and_the_endpoint_stays(
    endpoint, request_bytes, status
):
    assert _exchange(endpoint, request_bytes).startswith(b"HTTP/1.1 " + status)
    assert _exchange(endpoint, b"GET /readyz HTTP/1.1\r\n\r\n").endswith(b"you asked /readyz\n")


def test_a_bug_in_an_answer_is_a_500_and_is_logged(endpoint):
    assert _exchange(endpoint, b"GET /boom HTTP/1.1\r\n\r\n").startswith(
        b"HTTP/1.1 500 Internal Server Error\r\n"
    )
    assert endpoint.said[-1] == "health endpoint: /boom: RuntimeError: a bug"  # type: ignore[attr-defined]
    assert _exchange(endpoint, b"GET /livez HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_more_connections_than_it_holds_close_the_oldest_and_a_probe_is_answered(endpoint):
    """Idle connections beyond MAX_CONNECTIONS: the endpoint holds no more than that many
    descriptors for them, and a request that comes meanwhile is answered."""
    idle = [_connect(endpoint) for _ in range(health.MAX_CONNECTIONS + 50)]
    try:
        answer = _exchange(endpoint, b"GET /livez HTTP/1.1\r\n\r\n")
        assert answer.endswith(b"you asked /livez\n")
        for oldest in idle[:50]:  # closed by the endpoint: end of file, without an answer
            assert _read_all(oldest) == b""
    finally:
        for connection in idle:
            connection.close()


def test_a_connection_that_sends_too_slowly_is_closed_at_its_deadline(endpoint, monkeypatch):
    """A client that trickles its request (slowloris) gets the connection closed when its
    REQUEST_TIMEOUT is over, however much it still sends."""
    monkeypatch.setattr(health, "REQUEST_TIMEOUT", 0.5)
    with _connect(endpoint) as connection:
        connection.sendall(b"GET /livez HTTP/1.1\r\n")
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.05):
                try:
                    connection.sendall(b"X: y\r\n")
                except OSError:
                    return

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            assert _read_all(connection) == b""
        finally:
            stop.set()
            sender.join()


def test_a_port_already_taken_is_retried_until_it_is_free(monkeypatch):
    monkeypatch.setattr(health, "BIND_RETRY", 0.1)
    squatter = socket.create_server(("127.0.0.1", 0))
    port = squatter.getsockname()[1]
    said: list[str] = []
    endpoint = Endpoint("127.0.0.1", port, _answer, said.append).start()
    try:
        assert not endpoint.bound.wait(0.5)
        assert said == [
            f"health endpoint unavailable: cannot listen on 127.0.0.1:{port}: "
            "Address already in use; trying again every 0 s"
        ]
        squatter.close()
        assert endpoint.bound.wait(10)
        assert said[-1] == (
            f"health endpoint on http://127.0.0.1:{port} (/livez, /readyz, /metrics)"
        )
        assert _exchange(endpoint, b"GET /x HTTP/1.1\r\n\r\n").endswith(b"you asked /x\n")
    finally:
        squatter.close()
        endpoint.close()
