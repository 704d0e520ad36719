"""Diagnostics: what netc tells a user about their input, as data.

A `Diagnostic` is built by every compiler stage and never printed there;
`render_text` and `render_json` turn a list of them into the terminal layout
(file:line:col, the line, a caret, what was expected, a hint) or into a
versioned JSON document for editors and CI annotations.  Stages collect all
problems they can find instead of stopping at the first, so a user fixes a
file in one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from compiler.datatypes import field, frozen
from compiler.source import SourceFile, Span

JSON_FORMAT_VERSION = "1.0"


class Severity(StrEnum):
    """How bad a problem is: errors stop the build, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


CODES: Mapping[str, str] = {
    "E001": "syntax error",
    "E002": "unexpected character",
    "E003": "unexpected end of file",
    "E004": "input is not UTF-8 text",
    "E005": "input too large",
    "E006": "nesting too deep",
    "E010": "unknown keyword",
    "E011": "setting given twice",
    "E012": "missing setting",
    "E013": "wrong number or kind of values",
    "E014": "block expected or not allowed",
    "E015": "unknown template or template cycle",
    "E016": "empty input",
    "E101": "invalid network name",
    "E102": "duplicate network name",
    "E103": "invalid interface or bridge name",
    "E104": "unsupported CNI version",
    "E105": "bridge shared by several networks",
    "E106": "contradictory network settings",
    "E107": "plugin not run by the netc runtime",
    "E108": "state directory shared with the address reservations",
    "E201": "invalid address or CIDR",
    "E202": "host bits set in a subnet",
    "E203": "range outside its subnet or reversed",
    "E204": "gateway outside its subnet",
    "E205": "overlapping subnets",
    "E206": "invalid route",
    "E207": "subnet too small",
    "E301": "invalid port or port range",
    "E302": "contradictory hostPort policy",
    "E401": "malformed bandwidth quantity",
    "E402": "bandwidth quantity out of range",
    "E403": "bandwidth default above its maximum",
    "E404": "static bandwidth limit combined with a policy",
    "E501": "invalid plugin option",
    "E502": "chained plugin that netc writes itself",
    "E601": "node subnet outside the pod CIDRs or overlapping another node's",
    "E602": "pod CIDRs too small for the cluster's nodes",
    "E603": "node listed twice, or an address shared by two nodes",
    "E604": "node block size that does not fit the pod CIDR",
    "E605": "node address inside a pod CIDR",
    "E606": "MTU that the tunnel between nodes cannot carry",
    "E607": "node without a pod subnet, or with two kinds",
    "E608": "unknown cluster, or subnets beside a cluster",
    "E609": "node without the underlay address its routing needs",
    "E610": "VXLAN setting with host-gw routing",
    "E611": "host-gw between nodes on different underlay subnets",
    "E612": "pod CIDR overlapping the cluster's Service CIDR",
    "E613": "the same pod subnets on every node",
    "E614": "membership source netc does not have",
    "E615": "invalid etcd endpoint",
    "E616": "invalid etcd key prefix",
    "E617": "invalid duration",
    "E618": "client certificate without its key, or a key without its certificate",
    "E619": "node subnet given outright in a dynamic cluster",
    "E620": "invalid annotation prefix",
    "E621": "node statement in a cluster whose members are Kubernetes' Nodes",
    "W001": "setting has no effect with this target",
    "W002": "empty file",
    "W003": "no network in the input",
    "W004": "the node's default network decided by name",
    "W005": "pod CIDR overlapping Kubernetes' default Service CIDR",
    "W006": "plain-HTTP etcd endpoint",
    "W007": "node address a dynamic cluster does not use",
}
"""Every diagnostic code with its title; docs/diagnostics.md explains each."""


@frozen
class Note:
    """A secondary location that helps explain a diagnostic (e.g. the other overlapping subnet)."""

    message: str
    span: Span


@frozen
class Diagnostic:
    """One problem in the input, located by `span` and explained for a human."""

    code: str
    message: str
    span: Span | None
    expected: str | None = None
    hint: str | None = None
    notes: tuple[Note, ...] = field(default=())
    severity: Severity = Severity.ERROR

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code}")

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        """Reading order: file, line, column, then code."""
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)


class DiagnosticError(Exception):
    """Raised to abandon one construct; carries the diagnostics that explain why.

    Usually one; a construct made of independent values (`range A .. B`)
    raises one for each bad value, so a run reports all of them.
    """

    def __init__(self, diagnostic: Diagnostic, *more: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic
        self.diagnostics = (diagnostic, *more)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True when any diagnostic is an error (warnings alone do not fail a build)."""
    return any(d.severity is Severity.ERROR for d in diagnostics)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in reading order, duplicates dropped."""
    unique = {(d.code, d.message, d.span): d for d in diagnostics}
    return sorted(unique.values(), key=lambda d: d.sort_key)


def render_text(diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile]) -> str:
    """The terminal layout: a header line, the source line with carets, expected and hint."""
    blocks = [_render_one(d, sources) for d in diagnostics]
    summary = _summary(diagnostics)
    return "\n\n".join([*blocks, summary]) + "\n" if blocks else ""


def _render_one(diagnostic: Diagnostic, sources: Mapping[str, SourceFile]) -> str:
    where = f"{diagnostic.span}: " if diagnostic.span else ""
    lines = [f"{where}{diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}"]
    if diagnostic.span is not None:
        lines += _snippet(diagnostic.span, sources)
    if diagnostic.expected:
        lines.append(f"   = expected: {diagnostic.expected}")
    if diagnostic.hint:
        lines.append(f"   = hint: {diagnostic.hint}")
    lines += [f"   = note: {note.message} ({note.span})" for note in diagnostic.notes]
    return "\n".join(lines)


def _snippet(span: Span, sources: Mapping[str, SourceFile]) -> list[str]:
    source = sources.get(span.file)
    if source is None:
        return []
    text = "".join(
        " " if c == "\t" else c if c.isprintable() else "\ufffd" for c in source.line(span.line)
    )
    gutter = str(span.line)
    pad = " " * len(gutter)
    last = span.end_column if span.end_line == span.line else len(text) + 1
    width = max(1, last - span.column)
    caret = " " * (span.column - 1) + "^" * width
    return [f" {pad} |", f" {gutter} | {text}", f" {pad} | {caret}"]


def _summary(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    parts = [_plural(errors, "error")] if errors else []
    if warnings:
        parts.append(_plural(warnings, "warning"))
    return "found " + " and ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render_json(diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile]) -> str:
    """A versioned JSON document in the shape of `terraform validate -json`."""
    return json.dumps(json_document(diagnostics, sources), indent=2) + "\n"


def json_document(
    diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile]
) -> dict[str, object]:
    """The diagnostics document as a JSON object, for commands that add their own fields."""
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    return {
        "format_version": JSON_FORMAT_VERSION,
        "valid": errors == 0,
        "error_count": errors,
        "warning_count": len(diagnostics) - errors,
        "diagnostics": [_as_json(d, sources) for d in diagnostics],
    }


def _as_json(diagnostic: Diagnostic, sources: Mapping[str, SourceFile]) -> dict[str, object]:
    span = diagnostic.span
    return {
        "severity": str(diagnostic.severity),
        "code": diagnostic.code,
        "message": diagnostic.message,
        "expected": diagnostic.expected,
        "hint": diagnostic.hint,
        "range": None if span is None else _range(span),
        "source_line": None
        if span is None or span.file not in sources
        else sources[span.file].line(span.line),
        "notes": [{"message": n.message, "range": _range(n.span)} for n in diagnostic.notes],
    }


def render_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: each problem annotates its line in the PR."""
    lines = []
    for diagnostic in diagnostics:
        where = ""
        if diagnostic.span is not None:
            span = diagnostic.span
            where = (
                f" file={_property(span.file)},line={span.line},col={span.column},"
                f"endLine={span.end_line},endColumn={span.end_column},"
            )
        text = diagnostic.message + "".join(
            f"\n{label}: {value}"
            for label, value in (("expected", diagnostic.expected), ("hint", diagnostic.hint))
            if value
        )
        command = "error" if diagnostic.severity is Severity.ERROR else "warning"
        lines.append(f"::{command}{where or ' '}title={diagnostic.code}::{_data(text)}")
    return "".join(line + "\n" for line in lines)


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _range(span: Span) -> dict[str, object]:
    return {
        "filename": span.file,
        "start": {"line": span.line, "column": span.column},
        "end": {"line": span.end_line, "column": span.end_column},
    }
