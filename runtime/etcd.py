"""A client of etcd's v3 API through its JSON gateway, on the standard library alone.

netc needs little of etcd: ranges, one kind of transaction (create if
absent), leases and a watch.  etcd serves all of it as JSON over HTTP
(`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/grant`, `/v3/watch` streaming one
object per line), so `http.client` and `ssl` do, with no dependency in the
image; docs/architecture.md has the comparison with the Python clients.

Keys and values travel base64-encoded, 64-bit numbers as strings.  Every
answer is data from the network: it is checked for the fields netc reads
and refused (`EtcdError`) when they are not there.  A call goes to the
endpoint that answered last and, when that one fails, to the others in
turn; when none answers, or none has a leader, the datastore is
`Unavailable` -- a condition the caller waits out, never a reason to
remove anything.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from compiler.datatypes import frozen
from compiler.errors import Code, NetcError
from runtime.jsontext import json_object

TIMEOUT = 5.0
"""Seconds one request may take (etcd answers a write without quorum after ~7 s)."""
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
"""gRPC metadata through the gateway: a member that loses its leader ends the watch, rather
than keep a silent one open while the others go on."""


class EtcdError(NetcError):
    """etcd refused a request, or answered something that is not what the API says."""

    code = Code.OPERATION_FAILED


class Unavailable(EtcdError):
    """No endpoint answered, or none has a leader: the datastore cannot be used now."""


class Compacted(EtcdError):
    """A watch's start revision was compacted away: list again."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revisions before {revision} are compacted")
        self.revision = revision


@frozen
class Tls:
    """The client's TLS settings: the CA that signed etcd's certificate, and ours."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """An SSL context that checks etcd's certificate and presents ours."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@frozen
class KeyValue:
    """One key as etcd holds it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@frozen
class Event:
    """A change the watch saw: PUT (created or changed) or DELETE (deleted, or its lease ended)."""

    kind: str
    kv: KeyValue


@frozen
class Listing:
    """The keys under a prefix at one revision of the store."""

    kvs: tuple[KeyValue, ...]
    revision: int


@frozen
class Put:
    """A put of a transaction's branch."""

    key: str
    value: bytes
    lease: int = 0

    def request(self) -> dict[str, Any]:
        """The gateway's form of the request."""
        put: dict[str, Any] = {"key": _encode(self.key), "value": _encode(self.value)}
        if self.lease:
            put["lease"] = str(self.lease)
        return {"request_put": put}


@frozen
class Delete:
    """A delete of a transaction's branch."""

    key: str

    def request(self) -> dict[str, Any]:
        """The gateway's form of the request."""
        return {"request_delete_range": {"key": _encode(self.key)}}


@frozen
class Compare:
    """A transaction's condition on one key: its version or its mod revision equals a number.

    Version 0 means the key does not exist.
    """

    key: str
    target: str
    value: int

    def request(self) -> dict[str, Any]:
        """The gateway's form of the comparison."""
        field = {"VERSION": "version", "MOD": "mod_revision"}[self.target]
        return {
            "key": _encode(self.key),
            "target": self.target,
            "result": "EQUAL",
            field: str(self.value),
        }


def absent(key: str) -> Compare:
    """The condition that `key` does not exist."""
    return Compare(key, "VERSION", 0)


def unchanged(kv: KeyValue) -> Compare:
    """The condition that `kv` is still as it was read."""
    return Compare(kv.key, "MOD", kv.mod_revision)


class Etcd:
    """The endpoints of one etcd cluster, asked in turn."""

    def __init__(
        self, endpoints: Sequence[str], tls: Tls | None = None, timeout: float = TIMEOUT
    ) -> None:
        self.endpoints = [urllib.parse.urlsplit(e) for e in endpoints]
        for endpoint in self.endpoints:
            if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
                raise EtcdError(f"{endpoint.geturl()!r} is not an http(s) endpoint")
        self.tls = tls or Tls()
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._current = 0

    # the key space

    def get(self, key: str) -> KeyValue | None:
        """One key, or None."""
        kvs = self.call("/v3/kv/range", {"key": _encode(key)}).get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def under(self, prefix: str) -> Listing:
        """Every key under `prefix`, and the revision they were read at."""
        answer = self.call(
            "/v3/kv/range", {"key": _encode(prefix), "range_end": _encode(_prefix_end(prefix))}
        )
        kvs = tuple(_kv(kv) for kv in answer.get("kvs") or [])
        return Listing(kvs, _revision(answer))

    def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> tuple[bool, int]:
        """Whether every comparison held (then `success` was done, else `failure`), the revision."""
        answer = self.call(
            "/v3/kv/txn",
            {
                "compare": [c.request() for c in compare],
                "success": [o.request() for o in success],
                "failure": [o.request() for o in failure],
            },
        )
        return bool(answer.get("succeeded", False)), _revision(answer)

    # leases

    def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: its ID and the TTL etcd gave it."""
        answer = self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return _number(answer, "ID"), _number(answer, "TTL")

    def keepalive(self, lease: int) -> int:
        """Renew a lease; the seconds it has now, 0 when it is gone."""
        result = self.call("/v3/lease/keepalive", {"ID": str(lease)}).get("result", {})
        return _number(result, "TTL") if isinstance(result, dict) and "TTL" in result else 0

    def time_to_live(self, lease: int) -> int:
        """The seconds a lease has left; 0 (or less) when it does not exist."""
        return _number(self.call("/v3/lease/timetolive", {"ID": str(lease)}), "TTL", -1)

    def revoke(self, lease: int) -> None:
        """End a lease now, and with it every key it holds."""
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # watching

    def watch(self, prefix: str, start_revision: int) -> Iterator[tuple[list[Event], int]]:
        """The changes under `prefix` from `start_revision` on, batch by batch, with revisions.

        Each batch comes with the revision it brings the store to.  The
        watch ends (`Unavailable`) when the connection does, and raises
        `Compacted` when etcd no longer has `start_revision`: the caller lists
        again and watches from there.
        """
        request = {
            "create_request": {
                "key": _encode(prefix),
                "range_end": _encode(_prefix_end(prefix)),
                "start_revision": str(start_revision),
            }
        }
        try:
            connection, response = self._open("/v3/watch", request, stream=True)
        except (OSError, http.client.HTTPException) as error:  # the next listing fails over
            raise Unavailable(f"cannot watch: {error}") from error
        try:
            for line in response:
                answer = _json(line)
                result = answer.get("result")
                if not isinstance(result, dict):
                    raise Unavailable(f"the watch ended: {answer.get('error') or answer}")
                if result.get("compact_revision") not in (None, "0", 0):
                    raise Compacted(_number(result, "compact_revision"))
                if result.get("canceled"):
                    raise Unavailable(
                        f"the watch was cancelled: "
                        f"{result.get('cancel_reason') or 'no reason given'}"
                    )
                events = [_event(e) for e in result.get("events") or []]
                if events or not result.get("created"):
                    yield events, _revision(result)
        except (OSError, http.client.HTTPException) as error:
            raise Unavailable(f"the watch broke: {error}") from error
        finally:
            connection.close()
        raise Unavailable("the watch ended")

    # the wire

    def call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One request, to each endpoint in turn until one answers; its JSON answer."""
        failures = []
        for _ in self.endpoints:
            with self._lock:
                index = self._current
            try:
                connection, response = self._open(path, body, endpoint=index)
                try:
                    return _answer(response)
                finally:
                    connection.close()
            except Unavailable as error:
                failures.append(f"{self.endpoints[index].geturl()}: {error}")
            except (OSError, http.client.HTTPException) as error:
                failures.append(f"{self.endpoints[index].geturl()}: {error}")
            with self._lock:
                if self._current == index:
                    self._current = (index + 1) % len(self.endpoints)
        raise Unavailable("no etcd endpoint answered: " + "; ".join(failures))

    def _open(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        stream: bool = False,
        endpoint: int | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        if endpoint is None:
            with self._lock:
                endpoint = self._current
        url = self.endpoints[endpoint]
        connection: http.client.HTTPConnection
        if url.scheme == "https":
            connection = http.client.HTTPSConnection(
                url.hostname or "",
                url.port or 2379,
                timeout=None if stream else self.timeout,
                context=self._ssl(),
            )
        else:
            connection = http.client.HTTPConnection(
                url.hostname or "", url.port or 2379, timeout=None if stream else self.timeout
            )
        try:
            if stream:  # connect with a timeout, then wait for changes as long as they take
                connection.timeout = self.timeout
                connection.connect()
                assert connection.sock is not None
                connection.sock.settimeout(None)
            connection.request(
                "POST",
                url.path.rstrip("/") + path,
                json.dumps(body),
                {"Content-Type": "application/json", **REQUIRE_LEADER},
            )
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        if response.status != 200:
            text = response.read(4096).decode(errors="replace")
            connection.close()
            error = _gateway_error(text)
            if response.status >= 500 or "no leader" in error or "timed out" in error:
                raise Unavailable(f"HTTP {response.status}: {error}")
            raise EtcdError(f"etcd refused {path}: HTTP {response.status}: {error}")
        return connection, response

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self.tls.context()
        return self._context


def _answer(response: http.client.HTTPResponse) -> dict[str, Any]:
    return _json(response.read())


def _json(data: bytes) -> dict[str, Any]:
    return json_object(data, EtcdError, "etcd")


def _gateway_error(text: str) -> str:
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    message = (
        document.get("error") or document.get("message") if isinstance(document, dict) else None
    )
    return str(message or text.strip()[:200])


def _encode(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def _decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EtcdError(f"etcd's answer has no {what}")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise EtcdError(f"etcd's {what} is not base64") from None


def _number(document: Mapping[str, Any], field: str, default: int = 0) -> int:
    """A 64-bit number of the gateway's answer (a string, or absent when 0)."""
    value = document.get(field, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EtcdError(f"etcd's {field} is not a number: {value!r}") from None


def _revision(answer: Mapping[str, Any]) -> int:
    header = answer.get("header")
    if not isinstance(header, dict):
        raise EtcdError("etcd's answer has no header")
    return _number(header, "revision")


def _kv(document: object) -> KeyValue:
    if not isinstance(document, dict):
        raise EtcdError("etcd's key is not an object")
    key = _decode(document.get("key"), "key").decode(errors="replace")
    value = _decode(document.get("value", ""), "value")
    return KeyValue(
        key,
        value,
        _number(document, "create_revision"),
        _number(document, "mod_revision"),
        _number(document, "version"),
        _number(document, "lease"),
    )


def _event(document: object) -> Event:
    if not isinstance(document, dict):
        raise EtcdError("etcd's event is not an object")
    kind = document.get("type", "PUT")
    if kind not in ("PUT", "DELETE"):
        raise EtcdError(f"etcd's event type {kind!r} is unknown")
    return Event(kind, _kv(document.get("kv")))


def _prefix_end(prefix: str) -> bytes:
    """The first key after every key starting with `prefix` (etcd's range_end)."""
    data = bytearray(prefix.encode())
    while data and data[-1] == 0xFF:
        data.pop()
    if not data:
        return b"\0"
    data[-1] += 1
    return bytes(data)
