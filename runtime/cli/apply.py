"""`netc apply --node NAME`: make a node's node-scoped plan true, without any pod (root).

The plan is the one `netc plan --node NAME` prints; `runtime.apply` carries
it out.  Each change is printed on one line: `+` for an operation that had
to create or repair something, `-` for each object the prune removed.
`--detailed-exitcode` follows terraform: 0 nothing changed, 2 changes made,
1 any error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from compiler.errors import NetcError
from compiler.planner.ops import Plan
from runtime.apply import AppliedChange, apply_node
from runtime.cli.common import (
    EXIT_INVALID,
    EXIT_PENDING,
    DetailedExitCommand,
    SystemFailure,
    compile_paths,
    report,
)
from runtime.cli.node_plans import networks_of, plan_of_node
from runtime.executor import Blocked

APPLY_FORMAT = "1.0"
"""The version of `netc apply --format json` documents."""


@click.command("apply", cls=DetailedExitCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--node",
    required=True,
    help="The node to set up (a node of a cluster, or any name for networks without one).",
)
@click.option("--network", "network_name", help="Only this network's operations.")
@click.option(
    "--node-netns",
    help="Apply inside this network namespace (a name under "
    "/run/netns, or a path); default: this process's own.",
)
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 nothing changed, 2 changes made, 1 error."
)
def apply_command(
    files: tuple[str, ...],
    node: str,
    network_name: str | None,
    node_netns: str | None,
    output: str,
    detailed_exitcode: bool,
) -> None:
    """Set up NODE's routes, devices, bridges and NAT from FILES; prune what is not planned."""
    compilation, sources = compile_paths(files)
    report(compilation.diagnostics, sources)
    if not compilation.ok:
        sys.exit(EXIT_INVALID)
    networks = networks_of(compilation, node)
    if network_name is not None and network_name not in {n.name for n in networks}:
        raise click.UsageError(f"no network named {network_name!r} in the input")
    the_plan = plan_of_node(compilation, node, networks, network_name)
    changes: list[AppliedChange] = []

    def made(change: AppliedChange) -> None:
        changes.append(change)
        if output == "text":
            for line in change.lines():
                click.echo(line)

    try:
        apply_node(
            the_plan, [n for n in networks if network_name in (None, n.name)], node_netns, made
        )
    except NetcError as error:
        _failed(error, node, the_plan, changes, output, detailed_exitcode)
    if output == "json":
        click.echo(json.dumps(_document(the_plan, changes), indent=2))
    click.echo(f"netc apply: {_summary(node, the_plan, changes)}", err=True)
    if detailed_exitcode and changes:
        sys.exit(EXIT_PENDING)


def _document(
    the_plan: Plan, changes: Sequence[AppliedChange], error: str | None = None
) -> dict[str, object]:
    document: dict[str, object] = {
        "format_version": APPLY_FORMAT,
        "node": the_plan.node.to_json() if the_plan.node else None,
        "changes": [c.to_json() for c in changes],
    }
    if error is not None:
        document["error"] = error
    return document


def _failed(
    error: NetcError,
    node: str,
    the_plan: Plan,
    changes: Sequence[AppliedChange],
    output: str,
    detailed_exitcode: bool,
) -> NoReturn:
    """Say what failed and what stays: the changes made before it (printed as they were made).

    Nothing is undone: every operation is node-scoped and wanted, and the
    next apply carries on from where this one stopped.
    """
    if output == "json":
        click.echo(json.dumps(_document(the_plan, changes, str(error)), indent=2))
    made = sum(len(c.lines()) for c in changes)
    stays = (
        f"the {made} change{'s' if made != 1 else ''} above stay" if made else "nothing was changed"
    )
    if isinstance(error, Blocked):
        click.echo(
            f"netc apply: node {node}: refused; nothing was changed (what is in the "
            "way is not netc's to remove)",
            err=True,
        )
    else:
        click.echo(
            f"netc apply: node {node}: stopped by a failure; {stays} (nothing is "
            "rolled back: each is node-scoped, and the next apply carries on from "
            "there)",
            err=True,
        )
    if detailed_exitcode:
        click.echo(f"Error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    raise SystemFailure(str(error)) from error


def _summary(node: str, the_plan: Plan, changes: Sequence[AppliedChange]) -> str:
    where = f"node {node}" + (
        f" of cluster {the_plan.node.cluster}" if the_plan.node and the_plan.node.cluster else ""
    )
    if not changes:
        return f"{where}: nothing to change"
    lines = sum(len(c.lines()) for c in changes)
    return (
        f"{where}: {lines} change{'s' if lines > 1 else ''} ({len(changes)} of "
        f"{len(the_plan.operations)} operations)"
    )
