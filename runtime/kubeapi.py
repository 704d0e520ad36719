"""A client of the few Kubernetes API calls the agent makes, on the standard library alone.

A node's agent reads Nodes and annotates its own: get one Node, list them
(in pages, `limit` and `continue`), watch them from a resourceVersion with
bookmarks, and a JSON merge patch of annotations.  That is four requests
to one path; `http.client`, `ssl` and `json` make them with no dependency
in the image (docs/architecture.md has the comparison with lightkube and
the official client).

Where the API is and who the agent is comes from the pod (`in_cluster`: the
service account's token and CA, `KUBERNETES_SERVICE_HOST` and `_PORT`) or,
outside a pod, from a kubeconfig file (`from_kubeconfig`).  The token file
is read again for every request: the kubelet rotates a bound token in
place.

Every answer is data from the network, checked for the fields read.
Failures are sorted by what the caller does about them: `Unavailable` (no
answer, a 5xx or 429, a watch that broke) is waited out and never a reason
to remove anything; `Expired` (410 Gone: the resourceVersion was compacted)
means list again; `Refused` (401, 403, 404, another 4xx) is a condition to
report, with the API's own message.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from compiler.datatypes import frozen
from compiler.errors import Code, NetcError
from runtime.files import read_text
from runtime.jsontext import json_object

TIMEOUT = 10.0
"""Seconds one request may take."""
WATCH_SECONDS = 300
"""How long the API server keeps one watch open (`timeoutSeconds`); it ends it cleanly then."""
WATCH_MARGIN = 30
"""Seconds a watch may stay silent past its end before it is taken for broken (a connection
cut where neither end saw it)."""
PAGE = 500
"""Nodes per page of a listing."""
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
NODES = "/api/v1/nodes"
USER_AGENT = "netc-agent"


class ApiError(NetcError):
    """The Kubernetes API refused a request, or answered what the API does not say."""

    code = Code.OPERATION_FAILED


class Unavailable(ApiError):
    """No answer, an overloaded or failing server, a broken watch: try again later."""


class Expired(ApiError):
    """410 Gone: the resourceVersion asked for is compacted away; list again."""


class Refused(ApiError):
    """401, 403, 404 or another 4xx: the API's answer stands until something changes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(ApiError):
    """No usable configuration: not in a pod, or a kubeconfig netc cannot use."""

    code = Code.BAD_CONFIG


@frozen
class Config:
    """Where the API server is and how the agent proves who it is."""

    server: str
    """`https://HOST:PORT`."""
    ca_file: str | None = None
    ca_data: str | None = None
    """PEM text of the CA (a kubeconfig's certificate-authority-data, decoded)."""
    token: str | None = None
    token_file: str | None = None
    """Read again at every request: a bound token is rotated in place."""
    cert_file: str | None = None
    key_file: str | None = None

    def bearer(self) -> str | None:
        """The token to send now, if any."""
        if self.token_file is not None:
            text = read_text(self.token_file)
            if text is None:
                raise ConfigError(f"the token file {self.token_file} is missing")
            return text.strip()
        return self.token

    def context(self) -> ssl.SSLContext:
        """TLS that checks the server's certificate against the CA and presents ours."""
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def in_cluster(root: str = SERVICE_ACCOUNT, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration a pod has: its service account's token and CA, the API's Service."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError(
            "not in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
            "are not set): give --kubeconfig FILE"
        )
    token = os.path.join(root, "token")
    if not os.path.exists(token):
        raise ConfigError(
            f"no service account token at {token}: the DaemonSet mounts it "
            "(automountServiceAccountToken) in a cluster of Kubernetes Nodes"
        )
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return Config(server, ca_file=os.path.join(root, "ca.crt"), token_file=token)


def from_kubeconfig(path: str, directory: str | None = None) -> Config:
    """The current context of a kubeconfig: its cluster's server and CA, its user's credentials.

    Credentials given as data (a client certificate and key) are written to
    private files in `directory` (default: a new temporary one), which
    `ssl` needs; a user authenticated by a plugin (`exec`, `auth-provider`)
    cannot be used without that plugin, and is refused.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the kubeconfig {path}: {error}") from error
    cluster, user = _current(document, path)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise ConfigError(f"the kubeconfig {path} names no https:// server")
    if cluster.get("insecure-skip-tls-verify"):
        raise ConfigError(
            f"the kubeconfig {path} skips checking the server's certificate: "
            "netc always checks it (give certificate-authority)"
        )
    base = os.path.dirname(os.path.abspath(path))
    if any(key in user for key in ("exec", "auth-provider")):
        raise ConfigError(
            f"the kubeconfig {path} authenticates through a plugin, which netc "
            "does not run: give a token or a client certificate"
        )
    files = {key: _file(base, user.get(key)) for key in ("client-certificate", "client-key")}
    for key in ("client-certificate", "client-key"):
        data = user.get(f"{key}-data")
        if isinstance(data, str):
            directory = directory or tempfile.mkdtemp(prefix="netc-kube-")
            files[key] = _private_file(directory, key, _base64(data, key, path))
    return Config(
        server,
        ca_file=_file(base, cluster.get("certificate-authority")),
        ca_data=_ca_data(cluster, path),
        token=_string(user.get("token")),
        token_file=_file(base, user.get("tokenFile")),
        cert_file=files["client-certificate"],
        key_file=files["client-key"],
    )


def _current(document: object, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user of a kubeconfig's current context."""
    if not isinstance(document, dict):
        raise ConfigError(f"{path} is not a kubeconfig")
    name = document.get("current-context")

    def named(kind: str, wanted: object) -> dict[str, Any]:
        entries = document.get(kind) or []
        found = (
            next(
                (
                    e.get(kind[:-1])
                    for e in entries
                    if isinstance(e, dict) and e.get("name") == wanted
                ),
                None,
            )
            if isinstance(entries, list)
            else None
        )
        if not isinstance(found, dict):
            raise ConfigError(f"the kubeconfig {path} has no {kind[:-1]} {wanted!r}")
        return found

    context = named("contexts", name)
    return named("clusters", context.get("cluster")), named("users", context.get("user"))


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _file(base: str, value: object) -> str | None:
    """A kubeconfig's file: relative paths are relative to the kubeconfig's directory."""
    text = _string(value)
    return os.path.join(base, text) if text is not None else None


def _base64(data: str, key: str, path: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{key}-data of the kubeconfig {path} is not base64") from None


def _ca_data(cluster: Mapping[str, Any], path: str) -> str | None:
    data = cluster.get("certificate-authority-data")
    if not isinstance(data, str):
        return None
    return _base64(data, "certificate-authority", path).decode("ascii", errors="replace")


def _private_file(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


@frozen
class NodeList:
    """Every Node, and the resourceVersion the listing is consistent at."""

    items: tuple[dict[str, Any], ...]
    resource_version: str


@frozen
class WatchEvent:
    """ADDED, MODIFIED, DELETED (with the Node) or BOOKMARK (with its resourceVersion only)."""

    type: str
    node: dict[str, Any]
    resource_version: str


class Kube:
    """One API server, asked over HTTPS."""

    def __init__(self, config: Config, timeout: float = TIMEOUT) -> None:
        url = urllib.parse.urlsplit(config.server)
        if url.scheme != "https" or not url.hostname:
            raise ConfigError(f"{config.server!r} is not an https:// server")
        self.config = config
        self.host, self.port = url.hostname, url.port or 443
        self.base = url.path.rstrip("/")
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None

    def get_node(self, name: str) -> dict[str, Any]:
        """One Node (`Refused` with status 404 when there is none of that name)."""
        return self._call("GET", f"{NODES}/{urllib.parse.quote(name, safe='')}")

    def list_nodes(self, page: int = PAGE) -> NodeList:
        """Every Node, page by page, at the resourceVersion of the first page."""
        items: list[dict[str, Any]] = []
        query: dict[str, str] = {"limit": str(page)}
        version = None
        while True:
            answer = self._call("GET", f"{NODES}?{urllib.parse.urlencode(query)}")
            found = answer.get("items") or []
            metadata = answer.get("metadata")
            if not isinstance(found, list) or not isinstance(metadata, dict):
                raise ApiError("the Kubernetes API's NodeList has no items or metadata")
            items += [i for i in found if isinstance(i, dict)]
            version = version or _version(metadata)
            more = metadata.get("continue")
            if not more:
                return NodeList(tuple(items), version)
            query = {"limit": str(page), "continue": str(more)}

    def watch_nodes(
        self, resource_version: str, seconds: int = WATCH_SECONDS
    ) -> Iterator[WatchEvent]:
        """The Nodes' changes after `resource_version`, with bookmarks, until the server ends.

        The server ends a watch after `seconds`; that is a normal end.  A
        watch that breaks raises `Unavailable`, one whose version is
        compacted `Expired`.
        """
        query = urllib.parse.urlencode(
            {
                "watch": "1",
                "allowWatchBookmarks": "true",
                "resourceVersion": resource_version,
                "timeoutSeconds": str(seconds),
            }
        )
        connection, response = self._open(
            "GET", f"{NODES}?{query}", None, timeout=seconds + WATCH_MARGIN
        )
        try:
            for line in _lines(response):
                yield _event(_json(line))
        except (OSError, http.client.HTTPException) as error:
            raise Unavailable(f"the watch of Nodes broke: {error}") from error
        finally:
            connection.close()

    def patch_annotations(self, name: str, annotations: Mapping[str, str | None]) -> dict[str, Any]:
        """Set (or, with None, remove) annotations of a Node, by JSON merge patch."""
        body = json.dumps({"metadata": {"annotations": dict(annotations)}}).encode()
        return self._call("PATCH", f"{NODES}/{urllib.parse.quote(name, safe='')}", body)

    def _call(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        connection, response = self._open(method, path, body)
        try:
            return _json(response.read())
        except (OSError, http.client.HTTPException) as error:
            raise Unavailable(f"the Kubernetes API's answer broke off: {error}") from error
        finally:
            connection.close()

    def _open(
        self, method: str, path: str, body: bytes | None, timeout: float | None = None
    ) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        """A request sent and its answer's head read; anything but 200 raised."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        token = self.config.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        connection = http.client.HTTPSConnection(
            self.host, self.port, timeout=self.timeout, context=self._ssl()
        )
        try:
            connection.request(method, self.base + path, body, headers)
            response = connection.getresponse()
            if timeout is not None and connection.sock is not None:
                connection.sock.settimeout(timeout)
            if response.status != 200:
                raise _failure(response.status, response.read(65536))
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise Unavailable(
                f"the Kubernetes API at {self.host}:{self.port} did not answer: {error}"
            ) from error
        except BaseException:
            connection.close()
            raise
        return connection, response

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self.config.context()
        return self._context


def _lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The lines of a streamed answer; `IncompleteRead` when it is cut before its last chunk.

    Not `for line in response`: its readline takes a chunked answer cut
    mid-stream for one that ended, and a broken watch would pass for one the
    server ended.
    """
    pending = b""
    while chunk := response.read1(65536):
        *lines, pending = (pending + chunk).split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def _failure(status: int, body: bytes) -> ApiError:
    """The error an answer other than 200 means, with the API's message (a Status object)."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    message = document.get("message") if isinstance(document, dict) else None
    text = f"HTTP {status}: {message or body[:200].decode(errors='replace').strip()}"
    if status == 410:
        return Expired(text)
    if status == 429 or status >= 500:
        return Unavailable(text)
    return Refused(status, text)


def _json(data: bytes) -> dict[str, Any]:
    return json_object(data, ApiError, "the Kubernetes API")


def _version(metadata: Mapping[str, Any]) -> str:
    version = metadata.get("resourceVersion")
    if not isinstance(version, str) or not version:
        raise ApiError("the Kubernetes API's answer has no resourceVersion")
    return version


def _event(document: Mapping[str, Any]) -> WatchEvent:
    """A watch event; an ERROR event raised as the failure its Status says."""
    kind, found = document.get("type"), document.get("object")
    if not isinstance(found, dict):
        raise ApiError("a watch event without an object")
    if kind == "ERROR":
        code = found.get("code")
        raise _failure(code if isinstance(code, int) else 500, json.dumps(found).encode())
    if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
        raise ApiError(f"a watch event of type {kind!r}")
    metadata = found.get("metadata")
    if not isinstance(metadata, dict):
        raise ApiError("a watched Node without metadata")
    return WatchEvent(kind, found, _version(metadata))
