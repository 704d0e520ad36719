"""A small Kubernetes API server for the tests: Nodes only, as kube-apiserver serves them.

No kube-apiserver can be installed on these machines, so the agent's
kubernetes source is tested against this one, which implements the
documented behaviour the agent relies on (API concepts: "Efficient detection
of changes", "Retrieving large results sets in chunks"; the JSON merge patch
of RFC 7386):

- `GET /api/v1/nodes` lists Nodes at a resourceVersion, in pages with
  `limit` and `continue` (every page from the snapshot of the first; a
  `continue` whose version was compacted answers 410 Expired);
- `?watch=1&resourceVersion=RV` streams the changes after RV as chunked
  JSON lines -- ADDED, MODIFIED, DELETED, and BOOKMARK events with the
  current version when `allowWatchBookmarks` is asked -- until
  `timeoutSeconds`; a version older than the last compaction gets an ERROR
  event with a 410 Status, as the watch cache sends it;
- `GET` and `PATCH` (`application/merge-patch+json`) of one Node; `POST`
  and `DELETE` for the test's own hand (the control plane's part: kubelet
  registering, an admin deleting);
- bearer tokens: 401 for a missing or unknown one, 403 for a verb the
  token's role does not grant -- the agent's role is the ClusterRole netc's
  manifests give (`compiler.kubernetes.NODE_VERBS`), so a call the manifests
  do not allow fails here too.

Every Node it stores validates against the Kubernetes 1.28 schema
(kubernetes-validate, strict), and podCIDRs cannot change once set.  It
listens with TLS (a CA and certificate the test makes) on an address of a
namespace on the simulated underlay, from a thread of the test: its socket
belongs to that namespace, so agents reach it over the underlay as they
reach a real control plane.  `stop` and `start` take it away and bring it
back (an outage); `requests` records what was asked.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.server
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate

from compiler.kubernetes import NODE_VERBS
from runtime.netns import node_namespace
from tests.membership.etcd_cluster import certificates

PORT = 6443
AGENT_TOKEN = "agent-token"
ADMIN_TOKEN = "admin-token"
USERS = {
    AGENT_TOKEN: "system:serviceaccount:netc-system:netc-node",
    ADMIN_TOKEN: "kubernetes-admin",
}
ALL_VERBS = ("get", "list", "watch", "patch", "create", "delete")


class Gone(Exception):
    """A version older than the last compaction."""


class Store:
    """The Nodes, every change with its resourceVersion, and how far history was compacted."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.version = 100
        self.nodes: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.compacted = 0

    def put(self, node: dict[str, Any], kind: str) -> dict[str, Any]:
        kubernetes_validate.validate(node, "1.28.0", strict=True)
        with self.changed:
            self.version += 1
            stored = copy.deepcopy(node)
            metadata = stored["metadata"]
            metadata["resourceVersion"] = str(self.version)
            metadata.setdefault("uid", f"00000000-0000-4000-8000-{self.version:012d}")
            metadata.setdefault(
                "creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            )
            self.nodes[metadata["name"]] = stored
            self.history.append((self.version, kind, copy.deepcopy(stored)))
            self.changed.notify_all()
            return copy.deepcopy(stored)

    def delete(self, name: str) -> dict[str, Any]:
        with self.changed:
            self.version += 1
            gone = self.nodes.pop(name)
            gone["metadata"]["resourceVersion"] = str(self.version)
            self.history.append((self.version, "DELETED", copy.deepcopy(gone)))
            self.changed.notify_all()
            return gone

    def tick(self) -> None:
        """Another kind of object changed: the version moves on, no Node event."""
        with self.changed:
            self.version += 1
            self.changed.notify_all()

    def compact(self) -> None:
        """Forget every change so far: a watch or a continue from before now gets 410."""
        with self.changed:
            self.compacted = self.version

    def at(self, version: int) -> dict[str, dict[str, Any]]:
        """The Nodes as they were at `version`."""
        if version < self.compacted:
            raise Gone
        nodes: dict[str, dict[str, Any]] = {}
        for at, kind, node in self.history:
            if at > version:
                break
            if kind == "DELETED":
                nodes.pop(node["metadata"]["name"], None)
            else:
                nodes[node["metadata"]["name"]] = node
        return nodes

    def after(self, version: int) -> list[tuple[int, str, dict[str, Any]]]:
        if version < self.compacted:
            raise Gone
        return [entry for entry in self.history if entry[0] > version]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merged key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiServer:
    """The server, its store and its tokens; see the module docstring."""

    def __init__(
        self,
        netns: str,
        address: str,
        directory: Path,
        *,
        agent_verbs: tuple[str, ...] = NODE_VERBS,
        bookmark_every: float = 1.0,
    ) -> None:
        self.netns, self.address = netns, address
        self.store = Store()
        self.roles = {AGENT_TOKEN: set(agent_verbs), ADMIN_TOKEN: set(ALL_VERBS)}
        self.bookmark_every = bookmark_every
        self.after_patch: Callable[[str], None] | None = None
        """Called with the Node's name once a patch of it is stored, before it is answered:
        someone else's write that lands between an agent's patch and its next request."""
        directory.mkdir(parents=True, exist_ok=True)
        self.tls = certificates(directory, [address])
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.tls["server.crt"], self.tls["server.key"])
        self.requests: list[tuple[str, str, str]] = []
        """(user, verb, path and query) of every request authenticated."""
        self.streams: set[socket.socket] = set()
        self.generation = 0
        """Raised by `end_watches`: a watch started before ends."""
        self.running = False
        self.server: http.server.ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"https://{self.address}:{PORT}"

    def start(self) -> None:
        with node_namespace(self.netns):  # the listening socket belongs to that namespace
            server = http.server.ThreadingHTTPServer((self.address, PORT), Handler)
        server.api = self  # type: ignore[attr-defined]
        server.daemon_threads = True
        server.handle_error = lambda *_: None  # a client that went away is no test failure
        self.server, self.running = server, True
        threading.Thread(
            target=server.serve_forever, args=(0.05,), daemon=True, name="apiserver"
        ).start()

    def stop(self) -> None:
        """The API away, as a crashed server is: every open watch cut mid-stream, nothing
        listening."""
        with self.store.changed:
            for stream in list(self.streams):
                with contextlib.suppress(OSError):
                    stream.shutdown(socket.SHUT_RDWR)
            self.running = False
            self.store.changed.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def end_watches(self, change: Callable[[], object] | None = None) -> None:
        """Every open watch ended cleanly, after `change` (unseen by them) and a compaction
        of everything so far: a watcher that comes back from an older version gets 410."""
        with self.store.changed:
            if change is not None:
                change()
            self.store.compacted = self.store.version
            self.generation += 1
            self.store.changed.notify_all()

    # the control plane's part

    def add_node(self, node: dict[str, Any]) -> dict[str, Any]:
        return self.store.put(node, "ADDED")

    def delete_node(self, name: str) -> None:
        self.store.delete(name)

    def node(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.store.nodes[name])

    def count(self, verb: str, user: str = USERS[AGENT_TOKEN]) -> int:
        return sum(1 for who, did, _ in list(self.requests) if (who, did) == (user, verb))

    def kubeconfig(self, path: Path, token: str = AGENT_TOKEN) -> Path:
        """A kubeconfig for this server: its CA inline, the token's user."""
        ca = base64.b64encode(Path(self.tls["ca.crt"]).read_bytes()).decode()
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "sim",
                    "clusters": [
                        {
                            "name": "sim",
                            "cluster": {"server": self.url, "certificate-authority-data": ca},
                        }
                    ],
                    "users": [{"name": "agent", "user": {"token": token}}],
                    "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "agent"}}],
                }
            )
        )
        return path


class Handler(http.server.BaseHTTPRequestHandler):
    """One request of an agent or of the test, as kube-apiserver answers it."""

    protocol_version = "HTTP/1.1"

    @property
    def api(self) -> ApiServer:
        return self.server.api  # type: ignore[attr-defined,no-any-return]

    @property
    def store(self) -> Store:
        return self.api.store

    def setup(self) -> None:
        self.request = self.api.context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        name = url.path.removeprefix("/api/v1/nodes").removeprefix("/") or None
        if not url.path.startswith("/api/v1/nodes") or (name and "/" in name):
            return self._send(
                404, status(404, "NotFound", "the server could not find the requested resource")
            )
        verb = _verb(method, name, query)
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.api.roles:
            return self._send(401, status(401, "Unauthorized", "Unauthorized"))
        self.api.requests.append((USERS[token], verb, self.path))
        if verb not in self.api.roles[token]:
            what = f'nodes "{name}"' if name else "nodes"
            return self._send(
                403,
                status(
                    403,
                    "Forbidden",
                    f'{what} is forbidden: User "{USERS[token]}" cannot '
                    f'{verb} resource "nodes" in API group "" at the cluster scope',
                ),
            )
        getattr(self, f"_{verb}")(name, query)
        return None

    def _get(self, name: str, _query: dict[str, str]) -> None:
        found = self.store.nodes.get(name)
        if found is None:
            return self._send(404, status(404, "NotFound", f'nodes "{name}" not found'))
        return self._send(200, found)

    def _list(self, _name: None, query: dict[str, str]) -> None:
        with self.store.changed:
            version, after = self.store.version, ""
            if "continue" in query:
                token = json.loads(base64.b64decode(query["continue"]))
                version, after = token["rv"], token["after"]
            try:
                nodes = self.store.at(version)
            except Gone:
                return self._send(
                    410,
                    status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to "
                        "display a consistent list result.",
                    ),
                )
        names = sorted(n for n in nodes if n > after)
        limit = int(query.get("limit", 0)) or len(names)
        metadata: dict[str, Any] = {"resourceVersion": str(version)}
        if len(names) > limit:
            metadata["continue"] = base64.b64encode(
                json.dumps({"rv": version, "after": names[limit - 1]}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(names) - limit
        items = [
            {k: v for k, v in nodes[n].items() if k not in ("kind", "apiVersion")}
            for n in names[:limit]
        ]
        return self._send(
            200, {"kind": "NodeList", "apiVersion": "v1", "metadata": metadata, "items": items}
        )

    def _watch(self, _name: None, query: dict[str, str]) -> None:
        version = int(query.get("resourceVersion") or self.store.version)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        until = time.monotonic() + int(query.get("timeoutSeconds", 1800))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with self.store.changed:
            self.api.streams.add(self.request)
        try:
            self._stream(version, bookmarks, until)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            with self.store.changed:
                self.api.streams.discard(self.request)
            self.close_connection = True

    def _stream(self, version: int, bookmarks: bool, until: float) -> None:
        bookmark_due = time.monotonic() + self.api.bookmark_every
        generation = self.api.generation
        while self.api.running and time.monotonic() < until:
            with self.store.changed:
                if self.api.generation != generation:
                    return
                try:
                    events = self.store.after(version)
                except Gone:
                    self._chunk(
                        {
                            "type": "ERROR",
                            "object": status(
                                410,
                                "Expired",
                                f"too old resource version: {version} ({self.store.compacted})",
                            ),
                        }
                    )
                    return
                current = self.store.version  # every change up to here is in `events`
                if not events:
                    self.store.changed.wait(min(0.2, max(0.0, until - time.monotonic())))
            if events:
                for at, kind, node in events:
                    self._chunk({"type": kind, "object": node})
                    version = at
            elif bookmarks and time.monotonic() >= bookmark_due:
                self._chunk(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": "Node",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(current)},
                        },
                    }
                )
                version = current
                bookmark_due = time.monotonic() + self.api.bookmark_every

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _patch(self, name: str, _query: dict[str, str]) -> None:
        if self.headers.get("Content-Type") != "application/merge-patch+json":
            return self._send(
                415,
                status(
                    415, "UnsupportedMediaType", "the body of the request was in an unknown format"
                ),
            )
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        found = self.store.nodes.get(name)
        if found is None:
            return self._send(404, status(404, "NotFound", f'nodes "{name}" not found'))
        patched = merge_patch(found, body)
        if (
            found.get("spec", {}).get("podCIDRs")
            and patched.get("spec", {}).get("podCIDRs") != found["spec"]["podCIDRs"]
        ):
            return self._send(
                422,
                status(
                    422,
                    "Invalid",
                    f'Node "{name}" is invalid: '
                    "spec.podCIDRs: Forbidden: node updates may not "
                    'change podCIDR except from "" to valid',
                ),
            )
        try:
            stored = self.store.put(patched, "MODIFIED")
        except kubernetes_validate.ValidationError as error:
            return self._send(422, status(422, "Invalid", str(error)))
        if self.api.after_patch is not None:
            self.api.after_patch(name)
        return self._send(200, stored)

    def _create(self, _name: None, _query: dict[str, str]) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        return self._send(201, self.store.put(body, "ADDED"))

    def _delete(self, name: str, _query: dict[str, str]) -> None:
        if name not in self.store.nodes:
            return self._send(404, status(404, "NotFound", f'nodes "{name}" not found'))
        return self._send(200, self.store.delete(name))

    def _send(self, code: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _verb(method: str, name: str | None, query: dict[str, str]) -> str:
    if method == "GET":
        return "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list")
    return {"PATCH": "patch", "POST": "create", "DELETE": "delete"}[method]
