"""`netc plan`: the dry run -- the operations a pod would get, touching nothing.

`--live` (root, read-only) compares each operation with the kernel of a node
network namespace; `--detailed-exitcode` then follows terraform: 0 nothing
to do, 2 changes pending, 1 error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
import yaml

from compiler.diagnostics import json_document
from compiler.ir import Network
from compiler.pipeline import Compilation
from compiler.planner.context import (
    BandwidthRequest,
    ContextError,
    PodContext,
    bandwidth_from_option,
    mapping_from_option,
)
from compiler.planner.ops import PLAN_FORMAT, Observation, Plan, State
from compiler.planner.plan import PlanError, plan
from compiler.planner.policy import PolicyError
from compiler.planner.render import render_json, render_text, render_yaml
from compiler.source import SourceFile
from runtime.cli.changes import show as show_changes
from runtime.cli.common import (
    EXIT_INVALID,
    EXIT_PENDING,
    DetailedExitCommand,
    SystemFailure,
    compile_paths,
    netdsl_files,
    report,
)
from runtime.cli.completion import network_names
from runtime.cli.node_plans import networks_of, plan_of_node, with_live_members

POD_OPTIONS = ("pod", "container_id", "ifname", "netns", "ports", "bandwidth", "command")
"""Options that describe a pod: with --node, giving one asks for the pod's plan on that node."""


@click.command(cls=DetailedExitCommand)
@netdsl_files
@click.option(
    "--network",
    "network_name",
    shell_complete=network_names,
    help="The network to plan (default: the only one).",
)
@click.option(
    "--node",
    help="A node of a cluster: its node-scoped plan, or with pod options a pod's plan on it.",
)
@click.option("--pod", default="default/pod", show_default=True, help="NAMESPACE/NAME.")
@click.option("--container-id", default="netc-dry-run", show_default=True)
@click.option("--ifname", default="eth0", show_default=True)
@click.option("--netns", help="The pod's network namespace path.")
@click.option(
    "--port", "ports", multiple=True, help="HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]; repeatable."
)
@click.option("--bandwidth", help="The pod's annotations: ingress=RATE,egress=RATE.")
@click.option(
    "--command",
    type=click.Choice(["add", "del", "check"], case_sensitive=False),
    default="add",
    show_default=True,
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "yaml", "github"]),
    default="text",
    show_default=True,
    help="github (with --against): annotations for a pull request.",
)
@click.option(
    "--against",
    metavar="OLD",
    help="The change plan from OLD (a file, a directory or a git revision of FILES) "
    "to FILES, instead of a pod's plan.",
)
@click.option("--live", is_flag=True, help="Compare with the kernel (root, read-only).")
@click.option(
    "--node-netns",
    help="With --live: the node's network namespace name (a node's "
    "plan: default this process's own).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="With --live or --against: exit 0 nothing to do, 2 changes pending, 1 error.",
)
@click.option(
    "--live-members",
    is_flag=True,
    help="A cluster with etcd membership: plan from the members its etcd lists now "
    "(read-only; without it, a node of such a cluster has no plan of its own).",
)
@click.pass_context
def plan_command(
    ctx: click.Context,
    files: tuple[str, ...],
    network_name: str | None,
    node: str | None,
    pod: str,
    container_id: str,
    ifname: str,
    netns: str | None,
    ports: tuple[str, ...],
    bandwidth: str | None,
    command: str,
    output: str,
    against: str | None,
    live: bool,
    node_netns: str | None,
    detailed_exitcode: bool,
    live_members: bool,
) -> None:
    """Show the operations a pod (or, with --node, a node) would get from FILES.

    `-` reads standard input.  With --format json or yaml, errors and a
    refused pod are documents on stdout too.
    """
    _check_options(detailed_exitcode, live, against, output)
    compilation, sources = _compiled(files, output)
    if against is not None:
        show_changes(compilation, against, files, output, detailed_exitcode)
        return
    if live_members:
        compilation = with_live_members(compilation)
    networks = networks_of(compilation, node)
    if node is not None and not any(_given(ctx, name) for name in POD_OPTIONS):
        the_plan = plan_of_node(compilation, node, networks, network_name, live_members)
        observations = _observe_node(the_plan, node_netns) if live else None
    else:
        network = _select(networks, network_name)
        context = _context(pod, container_id, ifname, netns, ports, bandwidth)
        the_plan = _pod_plan(network, context, command, output)
        observations = _observe(network, the_plan, context, node_netns) if live else None
    renderers = {"json": render_json, "yaml": render_yaml}
    if output == "text":
        click.echo(render_text(the_plan, sources, observations), nl=False)
    else:
        click.echo(renderers[output](the_plan, observations), nl=False)
    if detailed_exitcode and observations is not None:
        _exit_detailed(observations)


def _exit_detailed(observations: Sequence[Observation]) -> NoReturn:
    """0 nothing to do, 2 changes pending, 1 when apply would refuse (an operation blocked)."""
    blocked = sum(o.state == State.BLOCKED for o in observations)
    if blocked:
        click.echo(
            f"netc plan: apply would refuse: {blocked} operation"
            f"{'s are' if blocked > 1 else ' is'} blocked by what the node has",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    pending = any(o.state in (State.CREATE, State.DIFFERENT) for o in observations)
    sys.exit(EXIT_PENDING if pending else 0)


def _check_options(detailed: bool, live: bool, against: str | None, output: str) -> None:
    if detailed and not (live or against):
        raise click.UsageError(
            "--detailed-exitcode reports pending changes, which only "
            "--live or --against find; add --live --node-netns NAME"
        )
    if output == "github" and not against:
        raise click.UsageError("--format github goes with --against")


def _compiled(files: tuple[str, ...], output: str) -> tuple[Compilation, dict[str, SourceFile]]:
    """The compiled input; invalid input ends here, reported in the format asked."""
    compilation, sources = compile_paths(files)
    if output in ("text", "github"):
        report(compilation.diagnostics, sources)
    elif not compilation.ok:
        _print(output, json_document(compilation.diagnostics, sources))
    if not compilation.ok:
        sys.exit(EXIT_INVALID)
    return compilation, sources


def _pod_plan(network: Network, context: PodContext, command: str, output: str) -> Plan:
    """The pod's plan; a refusal is an error, or a document in the machine formats."""
    try:
        return plan(network, context, command.upper())
    except (PolicyError, PlanError) as error:
        if output == "text":
            raise click.ClickException(str(error)) from error
        _print(output, _refusal(network, command, error))
        sys.exit(EXIT_INVALID)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def _refusal(network: Network, command: str, error: PolicyError | PlanError) -> dict[str, Any]:
    """A refused plan as a document: what was asked, the refusal, its CNI code and rule."""
    span = error.span if isinstance(error, PolicyError) else None
    return {
        "format_version": PLAN_FORMAT,
        "command": command.upper(),
        "network": network.name,
        "refused": {
            "message": error.message,
            "cni_code": int(error.code),
            "source": span.to_json() if span else None,
        },
    }


def _print(output: str, document: dict[str, Any]) -> None:
    if output == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(yaml.safe_dump(document, sort_keys=False), nl=False)


def _select(networks: Sequence[Network], name: str | None) -> Network:
    if name is None:
        if len(networks) != 1:
            names = ", ".join(n.name for n in networks)
            raise click.UsageError(
                f"the input has several networks ({names}); pick one with --network"
            )
        return networks[0]
    for network in networks:
        if network.name == name:
            return network
    raise click.UsageError(f"no network named {name!r} in the input")


def _context(
    pod: str,
    container_id: str,
    ifname: str,
    netns: str | None,
    ports: tuple[str, ...],
    bandwidth: str | None,
) -> PodContext:
    namespace, _, name = pod.rpartition("/")
    try:
        return PodContext(
            container_id,
            ifname,
            netns,
            namespace or None,
            name,
            tuple(mapping_from_option(p) for p in ports),
            bandwidth_from_option(bandwidth) if bandwidth else BandwidthRequest(),
        )
    except ContextError as error:
        raise click.BadParameter(str(error)) from error


def _observe(
    network: Network, the_plan: Plan, context: PodContext, node_netns: str | None
) -> list[Observation]:
    if node_netns is None:
        raise click.UsageError("--live needs --node-netns NAME")
    from compiler.errors import NetcError
    from runtime.observe import observe_plan

    try:
        return observe_plan(network, the_plan, context, node_netns)
    except NetcError as error:
        raise SystemFailure(str(error)) from error


def _observe_node(the_plan: Plan, node_netns: str | None) -> list[Observation]:
    """The node's plan against its kernel: the namespace given, or this process's own."""
    from compiler.errors import NetcError
    from runtime.apply import observe_node

    try:
        return observe_node(the_plan, node_netns)
    except NetcError as error:
        raise SystemFailure(str(error)) from error
