"""Lowering `membership SOURCE { ... }` of a cluster: where its members come from.

`static`, the default, takes no block: the members are the `node`
statements.  `kubernetes` takes its members from the Node objects of the
Kubernetes API (`runtime.membership.kubernetes`), optionally with the
prefix of the annotations netc writes on them:

    membership kubernetes {
        annotation-prefix netc.dev/   a DNS subdomain and `/` (default netc.dev/)
    }

`etcd` names a datastore where each node's agent claims a
block under a lease and watches the others (`runtime.membership.etcd`):

    membership etcd {
        endpoints https://10.0.0.1:2379, https://10.0.0.2:2379
        prefix /netc               keys under PREFIX/CLUSTER/ (default /netc)
        lease 60s                  1s .. 24h (default 60s)
        ca-file /etc/netc/etcd/ca.crt
        cert-file /etc/netc/etcd/client.crt
        key-file /etc/netc/etcd/client.key
    }

Everything the agents will need is checked here, without the datastore:
each endpoint is an http(s) URL of a host and a port (2379 when none is
written), normalised so that one member is not listed twice under two
spellings; a prefix is a key path of netc's own; the files are normal
absolute paths (the DaemonSet mounts them where they are written) and a
certificate comes with its key.  Plain HTTP is allowed for labs, with a
warning.  A membership is returned as far as it could be read, so that the
cluster's nodes are checked the way its source will use them.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Sequence

from compiler.ast import ListValue, Statement, Text, Value, Word
from compiler.collect import Collector, body, first
from compiler.diagnostics import Diagnostic, DiagnosticError, Note, Severity
from compiler.identifiers import is_node_name
from compiler.ir import DEFAULT_ANNOTATION_PREFIX, DEFAULT_LEASE, MEMBERSHIP_SOURCES, Membership
from compiler.source import Span
from compiler.values import duration, fail, one_word, text

ETCD_PORT = 2379
"""etcd's client port, taken when an endpoint names none."""
MAX_LEASE = 24 * 3600
DEFAULT_PREFIX = Membership().prefix
TLS_FILES = ("ca-file", "cert-file", "key-file")
SETTINGS = {
    "etcd": ("endpoints", "prefix", "lease", *TLS_FILES),
    "kubernetes": ("annotation-prefix",),
}
"""The settings of each source's block."""
SOURCES = "static, etcd or kubernetes"
RESERVED_PREFIXES = ("kubernetes.io", "k8s.io")
"""Annotation domains Kubernetes keeps for itself (and their subdomains)."""

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)", re.S)
_AUTHORITY = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*))(?::(?P<port>.*))?", re.S)
_PREFIX = re.compile(r"(?:/[A-Za-z0-9_.-]+)+")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
ENDPOINT_EXPECTED = "an http:// or https:// URL of an etcd member, such as https://10.0.0.1:2379"


def lower_membership(statement: Statement | None, collector: Collector) -> Membership:
    """The cluster's membership as far as it can be read, every problem in `collector`.

    A source that cannot be read is kept as written when it is a word: the
    cluster's nodes are then checked as those of a dynamic cluster, which
    every source but `static` makes them.
    """
    if statement is None:
        return Membership()
    source = collector.attempt(one_word, statement, SOURCES)
    if source is None:
        return Membership(span=statement.span)
    if source.text not in MEMBERSHIP_SOURCES:
        collector.report(_unknown_source(source))
        return Membership(source.text, span=statement.span)
    if source.text == "static":
        if statement.block is not None:
            collector.report(_static_block(statement))
        return Membership(span=statement.span)
    for problem in _foreign_settings(source.text, body(statement)):
        collector.report(problem)
    if source.text == "kubernetes":
        return _kubernetes(statement, collector)
    return _etcd(statement, collector)


def _unknown_source(word: Word) -> Diagnostic:
    return Diagnostic(
        "E614",
        f"`{word.text}` is not a membership source",
        word.span,
        expected=SOURCES,
        hint="static: the `node` statements are the members; etcd: each node's "
        "agent claims a block in etcd; kubernetes: the Node objects and "
        "their podCIDRs",
    )


def _static_block(statement: Statement) -> Diagnostic:
    assert statement.block is not None
    return Diagnostic(
        "E014",
        "`membership static` takes no block",
        statement.block.span,
        expected="`membership static` alone, `membership etcd { ... }` or `membership kubernetes`",
        hint="a static cluster's members are its `node` statements; the settings of this "
        "block belong to `membership etcd` or `membership kubernetes`",
    )


def _foreign_settings(source: str, settings: tuple[Statement, ...]) -> list[Diagnostic]:
    """E010 for a setting of another source's block (`endpoints` under kubernetes)."""
    own = SETTINGS[source]
    found = []
    for setting in settings:
        if setting.keyword in own:
            continue
        other = next(s for s, keywords in SETTINGS.items() if setting.keyword in keywords)
        found.append(
            Diagnostic(
                "E010",
                f"`{setting.keyword}` is not a setting of `membership {source}`",
                setting.key.span,
                expected=f"one of {', '.join(f'`{k}`' for k in own)}",
                hint=f"`{setting.keyword}` belongs to `membership {other}`",
            )
        )
    return found


def _kubernetes(statement: Statement, collector: Collector) -> Membership:
    written = first(body(statement), "annotation-prefix")
    prefix = collector.attempt(_annotation_prefix, written) if written else None
    return Membership(
        "kubernetes", span=statement.span, annotation_prefix=prefix or DEFAULT_ANNOTATION_PREFIX
    )


def _annotation_prefix(statement: Statement) -> str:
    """A prefix of annotation keys: a lower-case DNS subdomain of netc's own, then `/`.

    Kubernetes takes `DOMAIN/NAME` as an annotation key, the domain at most
    253 characters of RFC 1123 labels; `kubernetes.io` and `k8s.io` are its own.
    """
    written = text(statement, "a DNS subdomain followed by /, such as netc.dev/")
    span = statement.values[0].span
    domain = written.removesuffix("/")
    expected = "a lower-case DNS subdomain followed by `/`, such as netc.dev/"
    if not written.endswith("/") and _subdomain(written):
        raise fail(
            "E620",
            f"annotation prefix `{written}` does not end with `/`",
            span,
            expected=expected,
            hint=f"write `{written}/`: netc adds names such as `underlay-addresses` after it",
        )
    if not _subdomain(domain):
        raise fail(
            "E620",
            f"`{written}` is not an annotation prefix",
            span,
            expected=expected,
            hint="one domain and its `/`: Kubernetes takes `DOMAIN/NAME` as a key"
            if "/" in domain
            else "labels of lower-case letters, digits and `-` "
            "between dots, at most 253 characters in all",
        )
    if any(domain == r or domain.endswith("." + r) for r in RESERVED_PREFIXES):
        raise fail(
            "E620",
            f"annotation prefix `{written}` is Kubernetes' own",
            span,
            expected=expected,
            hint="`kubernetes.io/` and `k8s.io/` (and their subdomains) are kept for "
            "Kubernetes' components; use a domain of your own, or netc.dev/",
        )
    return written


def _subdomain(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in text.split("."))


def _etcd(statement: Statement, collector: Collector) -> Membership:
    settings = body(statement)
    listed = first(settings, "endpoints")
    if listed is None:
        collector.report(
            Diagnostic(
                "E012",
                "this etcd membership has no `endpoints`",
                statement.key.span,
                expected="`endpoints URL, ...` in the `membership etcd { ... }` block",
                hint="the client URLs of the etcd members, such as https://10.0.0.1:2379 "
                "(`etcdctl member list` shows them)",
            )
        )
    endpoints = _endpoints(listed, collector) if listed else ()
    prefix = first(settings, "prefix")
    lease = first(settings, "lease")
    files = {
        keyword: collector.attempt(_file, found) if (found := first(settings, keyword)) else None
        for keyword in TLS_FILES
    }
    for problem in _unpaired(settings):
        collector.report(problem)
    for problem in _plain_http(endpoints, any(files.values())):
        collector.report(problem)
    return Membership(
        "etcd",
        tuple(e for e, _ in endpoints),
        (collector.attempt(_prefix, prefix) if prefix else None) or DEFAULT_PREFIX,
        (collector.attempt(_lease, lease) if lease else None) or DEFAULT_LEASE,
        files["ca-file"],
        files["cert-file"],
        files["key-file"],
        statement.span,
    )


Endpoint = tuple[str, Span]
"""An endpoint's normal form and where it is written."""


def _endpoints(statement: Statement, collector: Collector) -> list[Endpoint]:
    """Every endpoint that reads, each once; bad and repeated ones reported."""
    values = statement.values
    if not values:
        collector.report(
            Diagnostic(
                "E013", "`endpoints` needs a value", statement.span, expected=ENDPOINT_EXPECTED
            )
        )
    found: dict[str, Endpoint] = {}
    """host:port -> the endpoint naming it first (a member has one scheme per port)."""
    index = 0
    while index < len(values):
        value = values[index]
        bracketed = _bracketed(values, index)
        if bracketed is not None:
            taken, problem = bracketed
            collector.report(problem)
            index += taken
            continue
        index += 1
        normal = collector.attempt(endpoint, value)
        if normal is None:
            continue
        member = normal.partition("://")[2]
        if member in found:
            collector.report(
                Diagnostic(
                    "E615",
                    f"endpoint `{_written(value)}` is given twice",
                    value.span,
                    expected="each etcd member once",
                    hint=f"both name the member at {member}; remove one of them",
                    notes=(Note("first given here", found[member][1]),),
                )
            )
            continue
        found[member] = (normal, value.span)
    return list(found.values())


def _written(value: Value) -> str:
    """A value as the user meant it: a word, a quoted string's text, a list's brackets."""
    if isinstance(value, Word):
        return value.text
    if isinstance(value, ListValue):
        return f"[{', '.join(_written(item) for item in value.items)}]"
    return value.value if isinstance(value, Text) else ""


def _bracketed(values: Sequence[Value], index: int) -> tuple[int, Diagnostic] | None:
    """An IPv6 endpoint written bare, which reads as a word, a `[ ... ]` list and a word.

    One diagnostic for the three, with the quoted endpoint as the hint.  How
    many values it takes and the diagnostic; None when `values[index]` does
    not start one.
    """
    here = values[index]
    after = values[index + 1] if index + 1 < len(values) else None
    parts: list[Value]
    if isinstance(here, Word) and here.text.endswith("://") and isinstance(after, ListValue):
        parts = [here, after]
        following = values[index + 2] if index + 2 < len(values) else None
        if isinstance(following, Word) and following.text.startswith(":"):
            parts.append(following)
    elif isinstance(here, ListValue):
        parts = [here]
    else:
        return None
    meant = "".join(_written(p) for p in parts)
    return len(parts), Diagnostic(
        "E615",
        "`[` starts a list here, not an IPv6 address",
        parts[0].span.cover(parts[-1].span),
        expected=ENDPOINT_EXPECTED,
        hint=f'quote an endpoint with an IPv6 address: "{meant}"',
    )


def endpoint(value: Value) -> str:
    """An etcd endpoint in its normal form: `scheme://host:port`, the port always written.

    A host is an IP address (IPv6 in brackets) or a DNS name, lower-cased.
    No user name or password (the client authenticates with `cert-file`),
    no path, query or fragment: the client talks to the member's root.
    """
    if not isinstance(value, Word | Text):
        raise fail(
            "E615", "an endpoint is a URL, not a block", value.span, expected=ENDPOINT_EXPECTED
        )
    written = _written(value)
    url = _URL.fullmatch(written)
    if url is None or url["scheme"].lower() not in ("http", "https"):
        raise fail(
            "E615",
            f"`{written}` is not an http:// or https:// URL",
            value.span,
            expected=ENDPOINT_EXPECTED,
            hint=f"write `https://{written}`"
            if url is None and ":/" not in written
            else "etcd's clients speak HTTP, over TLS (https://) or, in a lab, without it",
        )
    scheme, authority = url["scheme"].lower(), url["authority"]
    if "@" in authority:
        raise fail(
            "E615",
            f"endpoint `{written}` carries a user name",
            value.span,
            expected=ENDPOINT_EXPECTED,
            hint="credentials do not belong in the file: the agent authenticates with "
            "its client certificate (`cert-file`, `key-file`)",
        )
    if url["rest"] not in ("", "/"):
        raise fail(
            "E615",
            f"endpoint `{written}` has a path",
            value.span,
            expected=ENDPOINT_EXPECTED,
            hint=f"an endpoint is a member's address: write `{scheme}://{authority}`",
        )
    parts = _AUTHORITY.fullmatch(authority)
    host = _host(
        parts["v6"] if parts else None, parts["host"] if parts else None, written, value.span
    )
    port = _port(parts["port"] if parts else None, written, value.span)
    return f"{scheme}://{host}:{port}"


def _host(v6: str | None, name: str | None, written: str, span: Span) -> str:
    """The host as a URL writes it: `[v6]`, a dotted IPv4 address or a lower-case DNS name."""
    host = _host_text(v6, name)
    if host is None:
        raise fail(
            "E615",
            f"endpoint `{written}` has no valid host",
            span,
            expected=ENDPOINT_EXPECTED,
            hint="an IP address (an IPv6 one in brackets, the endpoint quoted) or a DNS name",
        )
    return host


def _host_text(v6: str | None, name: str | None) -> str | None:
    try:
        if v6 is not None:  # no zone: `%` would have to be escaped in a URL
            return f"[{ipaddress.IPv6Address(v6)}]" if "%" not in v6 else None
        if name is not None and re.fullmatch(r"[0-9.]+", name):
            return str(ipaddress.IPv4Address(name))
    except ValueError:
        return None
    return name.lower() if name and is_node_name(name.lower()) else None


def _port(port: str | None, written: str, span: Span) -> int:
    if port is None:
        return ETCD_PORT
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise fail(
            "E615",
            f"endpoint `{written}` has no valid port",
            span,
            expected=ENDPOINT_EXPECTED,
            hint=f"a port from 1 to 65535 after the host, or none for {ETCD_PORT}",
        )
    return int(port)


def _plain_http(endpoints: Sequence[Endpoint], tls_files: bool) -> list[Diagnostic]:
    """W006 for each plain-HTTP endpoint: allowed, for labs."""
    unused = (
        "; `ca-file`, `cert-file` and `key-file` apply to https:// endpoints only"
        if tls_files
        else ""
    )
    return [
        Diagnostic(
            "W006",
            f"etcd endpoint {normal} is plain HTTP",
            span,
            expected="https:// endpoints, with `ca-file`, `cert-file` and `key-file`",
            hint="anyone on the path can read and change the cluster's members, and with them "
            f"every node's routes: fine for a lab, not for a cluster{unused}",
            severity=Severity.WARNING,
        )
        for normal, span in endpoints
        if normal.startswith("http://")
    ]


def _prefix(statement: Statement) -> str:
    """A key path of netc's own: `/` and segments of letters, digits, `-`, `_` and `.`."""
    written = text(statement, "a key prefix such as /netc")
    span = statement.values[0].span
    expected = (
        "`/` and names of letters, digits, `-`, `_` and `.` between single slashes, such as /netc"
    )
    if written.strip("/") == "":
        raise fail(
            "E616",
            f"prefix `{written}` is the whole of etcd's key space",
            span,
            expected=expected,
            hint="a prefix of netc's own, such as /netc, keeps its keys apart from "
            "those of etcd's other users (Kubernetes keeps /registry)",
        )
    hint = None
    if not written.startswith("/"):
        hint = f"start it with a slash: `/{written}`"
    elif written.endswith("/"):
        hint = f"write `{written.rstrip('/')}`: netc adds `/CLUSTER/` after it"
    if (
        hint
        or not _PREFIX.fullmatch(written)
        or any(part in (".", "..") for part in written.split("/"))
    ):
        raise fail(
            "E616",
            f"`{written}` is not a key prefix netc takes",
            span,
            expected=expected,
            hint=hint,
        )
    return written


def _lease(statement: Statement) -> int:
    return duration(one_word(statement, "a duration such as 60s"), 1, MAX_LEASE, "a member's lease")


def _file(statement: Statement) -> str:
    """A file the agent reads, as its container sees it: a normal absolute path."""
    written = text(statement, "an absolute path")
    span = statement.values[0].span
    if not written.startswith("/"):
        raise fail(
            "E013",
            f"`{written}` is not an absolute path",
            span,
            expected="a path starting with /",
            hint="the agent has no useful working directory; the DaemonSet mounts the "
            "file at this path",
        )
    normal = posixpath.normpath(re.sub("/+", "/", written))
    if normal != written or normal == "/" or re.search(r"[\x00-\x1f\x7f]", written):
        raise fail(
            "E013",
            f"`{written}` is not a normal path of a file",
            span,
            expected="an absolute path without `.`, `..`, `//`, a trailing `/` or "
            "control characters",
            hint=f"write `{normal}`" if normal not in (written, "/") else None,
        )
    return written


def _unpaired(settings: tuple[Statement, ...]) -> list[Diagnostic]:
    """E618: a client certificate goes with its key, both or neither."""
    cert, key = first(settings, "cert-file"), first(settings, "key-file")
    if (cert is None) == (key is None):
        return []
    given, missing = (cert, "key-file") if cert is not None else (key, "cert-file")
    assert given is not None
    return [
        Diagnostic(
            "E618",
            f"`{given.keyword}` without `{missing}`",
            given.key.span,
            expected="both `cert-file` and `key-file`, or neither",
            hint="etcd's client authentication needs the certificate and its private key",
        )
    ]


def settings_problem(membership: Membership) -> str | None:
    """Why a membership read from a configuration is not one the language could write, or None.

    The agent reads its cluster from the ConfigMap, which anyone allowed to
    edit it may have written by hand: its endpoints, prefix, lease and files
    must be what the checks above let through, in their normal form.
    """
    if membership.source not in MEMBERSHIP_SOURCES:
        return f"membership source {membership.source!r} is not one of {MEMBERSHIP_SOURCES}"
    if membership.source == "static":
        static = membership == Membership(span=membership.span)
        return None if static else "a static membership has no settings"
    if membership.source == "kubernetes":
        return _kubernetes_problem(membership)
    parts = membership.prefix.split("/")
    if not _PREFIX.fullmatch(membership.prefix) or any(p in (".", "..") for p in parts):
        return f"prefix {membership.prefix!r} is not a key prefix netc takes"
    if not 1 <= membership.lease <= MAX_LEASE:
        return f"lease {membership.lease!r} is not from 1 to {MAX_LEASE} seconds"
    return _endpoints_problem(membership.endpoints) or _files_problem(membership)


def _kubernetes_problem(membership: Membership) -> str | None:
    """Members from the Kubernetes API: an annotation prefix, and no etcd setting."""
    defaults = Membership(
        "kubernetes", annotation_prefix=membership.annotation_prefix, span=membership.span
    )
    if membership != defaults:
        return "a membership from the Kubernetes API takes no etcd setting"
    prefix = membership.annotation_prefix
    domain = prefix.removesuffix("/")
    if (
        not prefix.endswith("/")
        or not _subdomain(domain)
        or any(domain == r or domain.endswith("." + r) for r in RESERVED_PREFIXES)
    ):
        return f"annotation prefix {prefix!r} is not one netc takes"
    return None


def _endpoints_problem(endpoints: Sequence[str]) -> str | None:
    if not endpoints:
        return "no etcd endpoint"
    span = Span.at("configuration")
    for written in endpoints:
        try:
            normal = endpoint(Text(written, written, span))
        except DiagnosticError as error:
            return error.diagnostic.message
        if normal != written:
            return f"endpoint {written!r} is not written as {normal!r}"
    return None


def _files_problem(membership: Membership) -> str | None:
    files = [membership.ca_file, membership.cert_file, membership.key_file]
    for path in (f for f in files if f is not None):
        if (
            not path.startswith("/")
            or posixpath.normpath(path) != path
            or re.search(r"[\x00-\x1f\x7f]", path)
        ):
            return f"file {path!r} is not a normal absolute path"
    if (membership.cert_file is None) != (membership.key_file is None):
        return "a client certificate without its key, or a key without its certificate"
    return None
