"""The front end as one pure function: source files in, networks and diagnostics out.

    syntax.parse  ->  locate.locate        ->  schema.check_structure
                  ->  templates.expand     ->  lower.lower_network  ->  checks.check_networks

Files are compiled together because templates and name/subnet uniqueness span
files.  Nothing here reads the disk or the environment; the CLI reads files
and hands over `SourceFile`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from compiler.ast import Document, Statement
from compiler.checks import check_networks
from compiler.collect import Collector
from compiler.diagnostics import Diagnostic, Note, has_errors, sort_diagnostics
from compiler.ir import Cluster, Network
from compiler.locate import locate
from compiler.lower import lower_network
from compiler.lower_cluster import lower_cluster
from compiler.schema import check_structure
from compiler.source import SourceFile
from compiler.syntax import parse
from compiler.templates import check_cycles, collect, expand

PRIORITY_STEP = 10


@dataclass(frozen=True, slots=True)
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
    """Compile files together; networks are returned only when there are no errors."""
    documents, diagnostics = _parse_all(sources)
    statements = [s for d in documents for s in d.statements]
    diagnostics += check_structure(tuple(statements), "file")
    if has_errors(diagnostics):
        return Compilation((), tuple(sort_diagnostics(diagnostics)))
    templates, template_problems = collect([s for s in statements if s.keyword == "template"])
    diagnostics += template_problems + check_cycles(templates)
    collector = Collector()
    clusters = _lower_clusters([s for s in statements if s.keyword == "cluster"], collector)
    networks = []
    for index, statement in enumerate(s for s in statements if s.keyword == "network"):
        merged = collector.attempt(expand, statement, templates)
        if merged is None:
            continue
        priority = min(99, PRIORITY_STEP * (index + 1))
        network = lower_network(statement, merged, priority, collector, clusters)
        if network is not None:
            networks.append(network)
    diagnostics += collector.diagnostics
    diagnostics += check_networks(networks, clusters)
    ordered = sort_diagnostics(diagnostics)
    if has_errors(ordered):
        return Compilation((), tuple(ordered))
    return Compilation(tuple(networks), tuple(ordered), tuple(clusters.values()))


def _lower_clusters(statements: list[Statement], collector: Collector) -> dict[str, Cluster]:
    """Every cluster that lowers without errors, by name (a repeated name is an error)."""
    found: dict[str, Cluster] = {}
    for statement in statements:
        cluster = lower_cluster(statement, collector)
        if cluster is None:
            continue
        if cluster.name in found:
            collector.report(Diagnostic(
                "E102", f"cluster name `{cluster.name}` is used twice", statement.span,
                expected="one `cluster` block per cluster",
                notes=(Note("first used here", found[cluster.name].span),)
                if found[cluster.name].span else ()))
            continue
        found[cluster.name] = cluster
    return found


def _parse_all(sources: Sequence[SourceFile]) -> tuple[list[Document], list[Diagnostic]]:
    documents = []
    diagnostics: list[Diagnostic] = []
    for source in sources:
        document, problems = parse(source)
        diagnostics += problems
        if document is not None:
            documents.append(locate(document))
    return documents, diagnostics
