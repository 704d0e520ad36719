"""`netc import`: existing conflists (and single-plugin .conf files) to `.netdsl`.

    import_conflists([("10-mynet.conflist", data)]) -> Imported(text, findings, diagnostics)

The stock plugins netdsl models become its statements -- bridge with
host-local (`stock.bridge`), portmap (`hostport`), bandwidth -- and every
other plugin keeps its options: the first as `plugin TYPE { ... }`, the
rest as `chain TYPE { ... }`.  So does a stock plugin the typed statements
cannot hold exactly (a bridge's `vlan`, portmap's `markMasqBit`, a portmap
after a chained plugin): it is kept as written, `plugin bridge { ... }` or
`chain portmap { ... }`, rather than changed.  Top-level keys other than
`cniVersion`, `name` and `plugins` (`disableCheck`) go into `conflist { ... }`.
The text is formatted as `netc fmt` would.

Nothing is dropped silently: each value that does not come back the same
is a finding naming the file and its JSON path.  And the claim is checked,
not hoped: the result is compiled and built with `--target reference`, and
any difference from the input that no finding explains becomes a finding of
its own.  Pure: the caller reads the files and prints.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeGuard, TypeVar

from compiler import emit
from compiler.conflist_import import stock, writer
from compiler.conflist_import.report import Finding, Level, Path, Report, format_path, show
from compiler.conflist_import.writer import Node
from compiler.datatypes import frozen, mutable
from compiler.diagnostics import Diagnostic, has_errors
from compiler.fmt import format_document
from compiler.identifiers import is_name
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from compiler.syntax import MAX_DEPTH, parse
from compiler.versions import CNI_VERSIONS, DEFAULT_CNI_VERSION

__all__ = ["Finding", "Imported", "Level", "import_conflists"]

_RUNTIME_KEYS = ("runtimeConfig", "args", "prevResult")
"""Plugin keys the runtime fills in at call time (`compiler.plugin_options` refuses them)."""
_FILE_NAME = re.compile(r"(?:(?P<priority>[0-9]+)-)?(?P<stem>.+?)(?:\.(?:conflist|conf|json))?")
_TYPED = {"portmap": stock.portmap, "bandwidth": stock.bandwidth}
"""The chained stock plugins netdsl models, in the order netc writes them."""
T = TypeVar("T")
MAIN_PLUGIN_HINTS = {
    "flannel": "flannel's plugin; for netc to run this network, see docs/migrating-from-flannel.md",
}
"""A comment above a main plugin netc can take over, in the text the admin edits."""


@frozen
class Imported:
    """The `.netdsl` text, what it could not carry over, and netc's verdict on it."""

    text: str
    findings: tuple[Finding, ...]
    diagnostics: tuple[Diagnostic, ...]
    """netc's checks of the result (a bridge two networks share, overlapping subnets)."""
    networks: tuple[str, ...] = ()
    """The names of the networks in `text`, in order."""

    @property
    def ok(self) -> bool:
        """True when every file was read and the result compiles."""
        return not has_errors(self.diagnostics) and all(
            f.level is not Level.ERROR for f in self.findings
        )


@mutable
class _Source:
    """One input as a conflist: its top-level keys and its plugins with their paths."""

    file: str
    report: Report
    top: dict[str, Any]
    plugins: list[tuple[dict[str, Any], Path]]


@mutable
class _Converted:
    """One network written as netdsl, and which input plugin each built plugin comes from."""

    name: str
    source: _Source
    node: Node
    order: list[int]


def import_conflists(
    inputs: Sequence[tuple[str, bytes]], output_name: str = "<stdout>"
) -> Imported:
    """The `.netdsl` for `(file name, content)` pairs; `output_name` names it in diagnostics."""
    reports = [Report(name) for name, _ in inputs]
    converted: list[_Converted] = []
    for (name, data), report in zip(inputs, reports, strict=True):
        network = _convert(name, data, report)
        if network is None:
            continue
        first = next((c for c in converted if c.name == network.name), None)
        if first is not None:
            report.warn(
                None,
                f"network {network.name} is also defined by {first.source.file}: "
                "runtimes load the first file only, so this one is left out",
            )
            continue
        converted.append(network)
    if any(r.failed for r in reports) or not converted:
        return Imported("", _findings(reports), ())
    text = _formatted(writer.render([c.node for c in converted]), output_name)
    diagnostics = _verify(text, output_name, converted)
    return Imported(text, _findings(reports), diagnostics, tuple(c.name for c in converted))


def _findings(reports: Sequence[Report]) -> tuple[Finding, ...]:
    return tuple(f for r in reports for f in r.findings)


def _formatted(text: str, name: str) -> str:
    """The text as `netc fmt` prints it; the writer must produce what the grammar reads."""
    document, problems = parse(SourceFile(name, text))
    assert document is not None, (problems, text)
    return format_document(document)


def _convert(name: str, data: bytes, report: Report) -> _Converted | None:
    document = _load(data, report)
    source = _source(name, document, report) if document is not None else None
    network_name = _network_name(name, source.top, report) if source else None
    if source is None or network_name is None:
        return None
    body = [*_header(source, report)]
    main, order = _plugins(source, report)
    if report.failed:
        return None
    node = Node(f"network {network_name}", [*body, *main], comment=f"imported from {name}")
    return _Converted(network_name, source, node, order)


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys its text gave more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: Sequence[tuple[str, Any]]) -> _Object:
    result = _Object(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        again = []
        for key, _ in pairs:
            if key in seen:
                again.append(key)
            seen.add(key)
        result.duplicates = tuple(dict.fromkeys(again))
    return result


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float; one beyond a float's range (`1e400`) is refused, not infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a number")
    return value


def _load(data: bytes, report: Report) -> dict[str, Any] | None:
    try:
        document = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_object,
            parse_constant=_refuse_constant,
            parse_float=_finite,
        )
    except UnicodeDecodeError as error:
        report.error(None, f"not UTF-8 text (byte {error.start})")
        return None
    except ValueError as error:
        report.error(None, f"not JSON: {error}")
        return None
    except RecursionError:
        report.error(None, f"not JSON netc reads: nested more than {MAX_DEPTH} deep")
        return None
    if _depth(document) > MAX_DEPTH:
        report.error(
            None,
            f"nested more than {MAX_DEPTH} deep: a .netdsl file holds at most "
            f"{MAX_DEPTH} levels of blocks and lists",
        )
        return None
    if not isinstance(document, dict):
        report.error((), f"expected a JSON object, found {show(document)}")
        return None
    for path, keys in _duplicates(document, ()):
        for key in keys:
            report.note((*path, key), "given twice: the last value is kept, as libcni reads it")
    return document


def _depth(document: Any) -> int:
    """How deeply objects and lists nest in a JSON value (found without recursion)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            pending += [
                (item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)
            ]
    return deepest


def _duplicates(value: Any, path: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    if isinstance(value, _Object) and value.duplicates:
        yield path, value.duplicates
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for step, child in children:
        yield from _duplicates(child, (*path, step))


def _source(name: str, document: Mapping[str, Any], report: Report) -> _Source | None:
    """The document as a conflist; a single-plugin .conf is its own one plugin."""
    if "plugins" in document:
        plugins = document["plugins"]
        if not isinstance(plugins, list) or not plugins:
            report.error(("plugins",), "expected a non-empty list of plugins")
            return None
        kept: list[tuple[dict[str, Any], Path]] = []
        for index, plugin in enumerate(plugins):
            if isinstance(plugin, dict):
                kept.append((plugin, ("plugins", index)))
            else:
                report.warn(("plugins", index), f"expected a plugin object, found {show(plugin)}")
        if not kept:
            report.error(("plugins",), "no plugin object in the list")
            return None
        return _Source(name, report, dict(document), kept)
    if "type" in document:
        top: dict[str, Any] = {k: document[k] for k in ("cniVersion", "name") if k in document}
        plugin = {k: v for k, v in document.items() if k not in top}
        report.note(None, "a single-plugin configuration: netc writes it as a conflist")
        return _Source(name, report, top, [(plugin, ())])
    report.error((), "neither a conflist (no `plugins`) nor a plugin configuration (no `type`)")
    return None


def _network_name(file: str, top: Mapping[str, Any], report: Report) -> str | None:
    name = top.get("name")
    if name is None:
        stem = _FILE_NAME.fullmatch(file.rsplit("/", 1)[-1])
        name = stem["stem"] if stem else ""
        report.warn(("name",), f"no network name: named {name} after the file")
    if not isinstance(name, str) or not is_name(name):
        report.error(
            ("name",),
            f"{show(name)} is not a network name libcni accepts (letters, digits, `_`, `.`, `-`)",
        )
        return None
    return name


def _header(source: _Source, report: Report) -> Iterator[Node]:
    """`cni` and `priority`, and the top-level keys netdsl has no place for."""
    top = dict(source.top)
    version = top.pop("cniVersion", None)
    if version in CNI_VERSIONS:
        yield Node(f"cni {version}")
    elif version is None:
        report.warn(("cniVersion",), f"no cniVersion: netc writes {DEFAULT_CNI_VERSION}")
    else:
        report.warn(
            ("cniVersion",),
            f"netc writes cniVersion {', '.join(CNI_VERSIONS)}; "
            f"{show(version)} becomes {DEFAULT_CNI_VERSION}",
        )
    yield from _priority(source.file)
    extra = {key: value for key, value in top.items() if key not in ("name", "plugins")}
    if extra:
        yield Node("conflist", writer.options(extra))


def _priority(file: str) -> Iterator[Node]:
    """`priority NN` from an `NN-name.conflist` file name, so --out keeps the file's place."""
    match = _FILE_NAME.fullmatch(file.rsplit("/", 1)[-1])
    if match and match["priority"] and int(match["priority"]) <= 99:
        yield Node(f"priority {int(match['priority'])}")


def _plugins(source: _Source, report: Report) -> tuple[list[Node], list[int]]:
    """The network's plugin statements, and the input index of each plugin netc writes.

    netc writes the main plugin, portmap (`hostport`), bandwidth, then the
    chained plugins.  portmap and bandwidth are typed only where that keeps the
    file's order and holds every value, and only when the file has one of
    them; else they are chained plugins as written, so the order never changes.
    """
    (main, main_path), *rest = source.plugins
    nodes = _main(main, main_path, report)
    count = Counter(kind for plugin, _ in rest if isinstance(kind := plugin.get("type"), str))
    slots = list(_TYPED)
    order = [0]
    for index, (plugin, path) in enumerate(rest, start=1):
        kind = plugin.get("type")
        node = None
        if kind in slots and count[kind] == 1:
            node = _typed(_TYPED[kind], plugin, path, report, f"`chain {kind} {{ ... }}`")
            slots = slots[slots.index(kind) + 1 :]  # what netc writes after it
        if node is None:
            slots = []  # netc writes chained plugins last: no typed one may follow
            node = _chained(plugin, path, report)
        if node is not None:
            nodes.append(node)
            order.append(index)
    return nodes, order


def _typed(
    convert: Callable[[Mapping[str, Any], Path, Report], T],
    plugin: Mapping[str, Any],
    path: Path,
    report: Report,
    verbatim: str,
) -> T | None:
    """The typed statements of a stock plugin when they hold it exactly, else None.

    Exactly means with notes at most (the same meaning spelt otherwise); a plugin
    they would change is reported as kept as written, the `verbatim` form.
    """
    trial = Report(report.file)
    typed = convert(plugin, path, trial)
    problems = list(
        dict.fromkeys(
            format_path(f.path if f.path is not None else path)
            for f in trial.findings
            if f.level is not Level.NOTE
        )
    )
    if not problems:
        report.findings += trial.findings
        return typed
    shown = ", ".join(problems[:3]) + (f" and {len(problems) - 3} more" if problems[3:] else "")
    report.note(
        path, f"kept as written, as {verbatim}: netdsl's typed statements cannot hold {shown}"
    )
    return None


def _main(plugin: Mapping[str, Any], path: Path, report: Report) -> list[Node]:
    kind = plugin.get("type")
    if not _plugin_type(kind):
        report.error((*path, "type"), f"{show(kind)} is not a plugin type netdsl can name")
        return []
    ipam = plugin.get("ipam")
    if kind == "bridge" and isinstance(ipam, dict) and ipam.get("type") == "host-local":
        typed = _typed(
            stock.bridge,
            plugin,
            path,
            report,
            "`plugin bridge { ... }` (built with --target reference only)",
        )
        if typed is not None:
            return typed
    elif kind == "bridge":
        report.note(
            path,
            "netc's bridge needs host-local IPAM: kept as a `plugin bridge` "
            "block, built with --target reference only",
        )
    if kind == "loopback":
        report.note(path, "netc-cni and the CRI runtimes bring lo up in every pod themselves")
    return [
        Node(
            f"plugin {kind}",
            writer.options(_passthrough(plugin, path, report)),
            comment=MAIN_PLUGIN_HINTS.get(kind),
        )
    ]


def _chained(plugin: Mapping[str, Any], path: Path, report: Report) -> Node | None:
    kind = plugin.get("type")
    if not _plugin_type(kind):
        report.warn(
            (*path, "type"), f"{show(kind)} is not a plugin type netdsl can name: plugin dropped"
        )
        return None
    return Node(f"chain {kind}", writer.options(_passthrough(plugin, path, report)) or None)


def _plugin_type(kind: Any) -> TypeGuard[str]:
    return isinstance(kind, str) and writer.is_word(kind) and not set("/\\") & set(kind)


def _passthrough(plugin: Mapping[str, Any], path: Path, report: Report) -> dict[str, Any]:
    """A plugin's options without `type` and the keys the runtime sets."""
    kept = {}
    for key, value in plugin.items():
        if key in ("name", "cniVersion"):
            report.note((*path, key), "libcni gives every plugin the conflist's: left out")
        elif key in _RUNTIME_KEYS or key.startswith("cni.dev/"):
            report.warn((*path, key), f"the runtime sets {show(key)}; a conflist cannot: dropped")
        elif key != "type":
            kept[key] = value
    return kept


def _verify(text: str, name: str, converted: Sequence[_Converted]) -> tuple[Diagnostic, ...]:
    """Compile the result and build it back: differences no finding explains become findings."""
    compilation = compile_sources([SourceFile(name, text)])
    if not compilation.ok:
        return compilation.diagnostics
    networks = {n.name: n for n in compilation.networks}
    for network in converted:
        built = networks[network.name]
        _compare(network, emit.conflist(built, "reference"))
        base = network.source.file.rsplit("/", 1)[-1]
        if network.source.file != "<stdin>" and base != emit.file_name(built):
            network.source.report.note(
                None, f"netc build --out writes this network to {emit.file_name(built)}"
            )
    return compilation.diagnostics


def _compare(network: _Converted, built: Mapping[str, Any]) -> None:
    source, report = network.source, network.source.report
    plugins = built["plugins"]
    pairs: list[tuple[dict[str, Any], dict[str, Any], Path]] = [
        (
            {k: v for k, v in source.top.items() if k != "plugins"},
            {k: v for k, v in built.items() if k != "plugins"},
            (),
        )
    ]
    pairs += [
        (source.plugins[i][0], plugins[j], source.plugins[i][1])
        for j, i in enumerate(network.order)
    ]
    for mine, theirs, path in pairs:
        for where, before, after in _differences(mine, theirs, path):
            if not any(
                f.covers(where) or _within(f, where, before, after) for f in report.findings
            ):
                report.warn(where, _difference(before, after))


def _within(finding: Finding, where: Path, before: Any, after: Any) -> bool:
    """A list that lost or gained items is explained by a finding on one of its items."""
    lists = isinstance(before, list) and isinstance(after, list)
    return lists and finding.path is not None and finding.path[: len(where)] == where


def _difference(before: Any, after: Any) -> str:
    if after is _ABSENT:
        return f"built back without it (was {show(before)})"
    if before is _ABSENT:
        return f"built back with {show(after)}, which the file does not have"
    return f"built back as {show(after)} instead of {show(before)}"


_ABSENT = object()


def _differences(before: Any, after: Any, path: Path) -> Iterator[tuple[Path, Any, Any]]:
    """The paths where two JSON values differ, with the values there (`_ABSENT` when missing).

    An object or list only one side has is compared with an empty one, so a
    finding on one of its items explains that item.
    """
    if before is _ABSENT and isinstance(after, dict | list) and after:
        before = type(after)()
    if after is _ABSENT and isinstance(before, dict | list) and before:
        after = type(before)()
    if isinstance(before, dict) and isinstance(after, dict):
        for key in dict.fromkeys([*before, *after]):
            yield from _differences(before.get(key, _ABSENT), after.get(key, _ABSENT), (*path, key))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (a, b) in enumerate(zip(before, after, strict=True)):
            yield from _differences(a, b, (*path, index))
    elif before is _ABSENT or after is _ABSENT or not _same_scalar(before, after):
        yield path, before, after


def _same_scalar(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`, but `1.0` is `1`."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and bool not in (type(a), type(b)):
        return a == b
    return type(a) is type(b) and a == b
