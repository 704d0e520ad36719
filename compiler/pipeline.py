"""The front end as one pure function: source files in, networks and diagnostics out.

    syntax.parse  ->  locate.locate        ->  schema.check_structure
                  ->  templates.expand     ->  lower.lower_network  ->  checks.check_networks

Clusters are lowered first (`lower_cluster`): networks draw their node
subnets from them.

Files are compiled together because templates and name/subnet uniqueness span
files.  Nothing here reads the disk or the environment; the CLI reads files
and hands over `SourceFile`s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from compiler.ast import Document, Statement
from compiler.checks import check_networks, default_by_name
from compiler.collect import Collector
from compiler.datatypes import frozen
from compiler.diagnostics import (
    Diagnostic,
    DiagnosticError,
    Note,
    Severity,
    has_errors,
    sort_diagnostics,
)
from compiler.ir import Cluster, Network
from compiler.locate import locate
from compiler.lower import lower_network
from compiler.lower_cluster import lower_cluster
from compiler.schema import check_structure
from compiler.source import SourceFile, Span
from compiler.syntax import parse
from compiler.templates import check_cycles, collect, expand
from compiler.values import block_name

DEFAULT_PRIORITY = 10
"""The `NN` of a network without `priority`: the same for every network, so adding a file
never moves another network's conflist (ties sort by name; `checks` warns when that picks
the node's default network)."""


@frozen
class Compilation:
    """The result of compiling some files: networks in input order and every diagnostic."""

    networks: tuple[Network, ...]
    diagnostics: tuple[Diagnostic, ...]
    clusters: tuple[Cluster, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error."""
        return not has_errors(self.diagnostics)


def compile_sources(sources: Sequence[SourceFile]) -> Compilation:
    """Compile files together; networks are returned only when there are no errors.

    One mistake hides no other: every network is lowered even when the
    structure check found unknown or misplaced keywords (lowering ignores
    those), and networks with errors still take part in the checks across
    networks with the parts that could be read.  Only syntax errors stop a
    run early: a file that does not parse has no statements to check.
    """
    documents, diagnostics = _parse_all(sources)
    if has_errors(diagnostics):
        return Compilation((), tuple(sort_diagnostics(diagnostics)))
    diagnostics += _empty(sources, documents)
    statements = [s for d in documents for s in d.statements]
    diagnostics += check_structure(tuple(statements), "file")
    templates, template_problems = collect([s for s in statements if s.keyword == "template"])
    diagnostics += template_problems + check_cycles(templates)
    collector = Collector()
    declared = _lower_clusters([s for s in statements if s.keyword == "cluster"], collector)
    clusters = {name: c for name, c in declared.items() if c is not None}
    checked, networks = [], []
    for statement in (s for s in statements if s.keyword == "network"):
        before = len(collector.diagnostics)
        network = _lower(statement, templates, declared, collector)
        if network is not None:
            checked.append(network)
            if len(collector.diagnostics) == before:
                networks.append(network)
    diagnostics += collector.diagnostics
    diagnostics += check_networks(checked, clusters) + default_by_name(networks)
    if not networks and not declared and not has_errors(diagnostics):
        diagnostics += _no_network(documents)
    ordered = sort_diagnostics(diagnostics)
    if has_errors(ordered):
        return Compilation((), tuple(ordered))
    return Compilation(tuple(networks), tuple(ordered), tuple(clusters.values()))


def _lower(
    statement: Statement,
    templates: Mapping[str, Statement],
    clusters: Mapping[str, Cluster | None],
    collector: Collector,
) -> Network | None:
    """A network with its templates merged in; its problems go to `collector`.

    A `use` of a template that is unknown (or in a cycle) leaves settings
    out, so "missing setting" (E012) is not said of that network: the
    template would probably have given it.
    """
    merged, problems = expand(statement, templates)
    own = Collector()
    network = lower_network(statement, merged, DEFAULT_PRIORITY, own, clusters)
    collector.diagnostics += problems + [
        d for d in own.diagnostics if not (problems and d.code == "E012")
    ]
    return network


def _lower_clusters(
    statements: Sequence[Statement], collector: Collector
) -> dict[str, Cluster | None]:
    """Every cluster by name, as far as it could be read (None: not at all).

    Clusters with errors take part, so that the checks of the networks using
    them run too, and a network naming one is not told that there is no such
    cluster: the cluster's own errors say what is wrong.  A repeated name is
    an error.
    """
    found: dict[str, Cluster | None] = {}
    first: dict[str, Statement] = {}
    for statement in statements:
        cluster = lower_cluster(statement, collector)
        name = cluster.name if cluster else _declared_name(statement)
        if name is None:
            continue
        earlier = first.setdefault(name, statement)
        if earlier is not statement:
            collector.report(
                Diagnostic(
                    "E102",
                    f"cluster name `{name}` is used twice",
                    statement.span,
                    expected="one `cluster` block per cluster",
                    notes=(Note("first used here", earlier.span),),
                )
            )
            continue
        found[name] = cluster
    return found


def _declared_name(statement: Statement) -> str | None:
    """The name a cluster statement declares, if it has a readable one."""
    try:
        return block_name(statement)
    except DiagnosticError:
        return None  # lower_cluster reported it


def _empty(sources: Sequence[SourceFile], documents: Sequence[Document]) -> list[Diagnostic]:
    """An input without statements is a mistake (an empty pipe); say so instead of "0 valid"."""
    empty = [d for d in documents if not d.statements]
    if len(empty) == len(documents):
        name = sources[0].name if sources else "<input>"
        return [
            Diagnostic(
                "E016",
                "the input has no statements",
                Span(name, 1, 1, 1, 1),
                expected="at least one `network NAME { ... }`",
                hint="was the file or the pipe into netc empty?",
            )
        ]
    return [
        Diagnostic(
            "W002",
            f"{d.file} has no statements",
            Span(d.file, 1, 1, 1, 1),
            expected="a `network` or `template` block",
            hint="remove the file from the command",
            severity=Severity.WARNING,
        )
        for d in empty
    ]


def _no_network(documents: Sequence[Document]) -> list[Diagnostic]:
    """A valid input of templates only builds nothing: a warning, not "0 networks valid"."""
    statements = [s for d in documents for s in d.statements]
    if not statements:
        return []
    return [
        Diagnostic(
            "W003",
            "the input has no network: templates compile to nothing",
            statements[0].key.span,
            expected="a `network NAME { ... }` block",
            hint="compile templates together with the networks that use them",
            severity=Severity.WARNING,
        )
    ]


def _parse_all(sources: Sequence[SourceFile]) -> tuple[list[Document], list[Diagnostic]]:
    documents = []
    diagnostics: list[Diagnostic] = []
    for source in sources:
        document, problems = parse(source)
        diagnostics += problems
        if document is not None:
            documents.append(locate(document))
    return documents, diagnostics
