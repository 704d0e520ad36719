"""`netc plan`: the dry run -- the operations a pod would get, touching nothing.

`--live` (root, read-only) compares each operation with the kernel of a node
network namespace; `--detailed-exitcode` then follows terraform: 0 nothing
to do, 2 changes pending, 1 error.
"""

from __future__ import annotations

import sys

import click

from compiler.cli.common import (
    EXIT_INVALID,
    EXIT_PENDING,
    DetailedExitCommand,
    SystemFailure,
    compile_paths,
    report,
)
from compiler.cli.node_plans import networks_of, plan_of_node
from compiler.ir import Network
from compiler.planner.context import (
    BandwidthRequest,
    ContextError,
    PodContext,
    bandwidth_from_option,
    mapping_from_option,
)
from compiler.planner.ops import Observation, Plan, State
from compiler.planner.plan import PlanError, plan
from compiler.planner.policy import PolicyError
from compiler.planner.render import render_json, render_text, render_yaml

POD_OPTIONS = ("pod", "container_id", "ifname", "netns", "ports", "bandwidth", "command")
"""Options that describe a pod: with --node, giving one asks for the pod's plan on that node."""


@click.command(cls=DetailedExitCommand)
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@click.option("--network", "network_name", help="The network to plan (default: the only one).")
@click.option("--node", help="A node of a cluster: its node-scoped plan, or with pod options "
              "a pod's plan on it.")
@click.option("--pod", default="default/pod", show_default=True, help="NAMESPACE/NAME.")
@click.option("--container-id", default="netc-dry-run", show_default=True)
@click.option("--ifname", default="eth0", show_default=True)
@click.option("--netns", help="The pod's network namespace path.")
@click.option("--port", "ports", multiple=True,
              help="HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]; repeatable.")
@click.option("--bandwidth", help="The pod's annotations: ingress=RATE,egress=RATE.")
@click.option("--command", type=click.Choice(["add", "del", "check"], case_sensitive=False),
              default="add", show_default=True)
@click.option("--format", "output", type=click.Choice(["text", "json", "yaml"]), default="text",
              show_default=True)
@click.option("--live", is_flag=True, help="Compare with the kernel (root, read-only).")
@click.option("--node-netns", help="With --live: the node's network namespace name (a node's "
              "plan: default this process's own).")
@click.option("--detailed-exitcode", is_flag=True,
              help="With --live: exit 0 nothing to do, 2 changes pending, 1 error.")
@click.pass_context
def plan_command(ctx: click.Context, files: tuple[str, ...], network_name: str | None,
                 node: str | None, pod: str, container_id: str, ifname: str, netns: str | None,
                 ports: tuple[str, ...], bandwidth: str | None, command: str, output: str,
                 live: bool, node_netns: str | None, detailed_exitcode: bool) -> None:
    """Show the operations a pod (or, with --node, a node) would get from FILES."""
    compilation, sources = compile_paths(files)
    report(compilation.diagnostics, sources)
    if not compilation.ok:
        sys.exit(EXIT_INVALID)
    networks = networks_of(compilation, node)
    if node is not None and not any(_given(ctx, name) for name in POD_OPTIONS):
        the_plan = plan_of_node(compilation, node, networks, network_name)
        observations = _observe_node(the_plan, node_netns) if live else None
    else:
        network = _select(networks, network_name)
        context = _context(pod, container_id, ifname, netns, ports, bandwidth)
        try:
            the_plan = plan(network, context, command.upper())
        except (PolicyError, PlanError) as error:
            raise click.ClickException(str(error)) from error
        observations = _observe(network, the_plan, context, node_netns) if live else None
    renderers = {"json": render_json, "yaml": render_yaml}
    if output == "text":
        click.echo(render_text(the_plan, sources, observations), nl=False)
    else:
        click.echo(renderers[output](the_plan, observations), nl=False)
    if detailed_exitcode and observations is not None:
        pending = any(o.state in (State.CREATE, State.DIFFERENT) for o in observations)
        sys.exit(EXIT_PENDING if pending else 0)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


def _select(networks: list[Network], name: str | None) -> Network:
    if name is None:
        if len(networks) != 1:
            names = ", ".join(n.name for n in networks)
            raise click.UsageError(f"the input has several networks ({names}); pick one "
                                   "with --network")
        return networks[0]
    for network in networks:
        if network.name == name:
            return network
    raise click.UsageError(f"no network named {name!r} in the input")


def _context(pod: str, container_id: str, ifname: str, netns: str | None,
             ports: tuple[str, ...], bandwidth: str | None) -> PodContext:
    namespace, _, name = pod.rpartition("/")
    try:
        return PodContext(
            container_id, ifname, netns, namespace or None, name,
            tuple(mapping_from_option(p) for p in ports),
            bandwidth_from_option(bandwidth) if bandwidth else BandwidthRequest())
    except ContextError as error:
        raise click.BadParameter(str(error)) from error


def _observe(network: Network, the_plan: Plan, context: PodContext,
             node_netns: str | None) -> list[Observation]:
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
