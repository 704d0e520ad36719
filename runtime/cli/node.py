"""`netc status`, `gc`, `uninstall`: a node's netc state, its leaks collected, all of it removed.

The networks come from `.netdsl` sources (a cluster's built for `--node`)
or from the conflists in a directory such as /etc/cni/net.d (netc's own
plugin carries its compiled network) -- for `uninstall`, from the sources
or the agent's configuration.  The work is in `runtime.inventory`,
`runtime.detach` and `runtime.uninstall`; these commands read, print and
choose exit codes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from compiler import ir_codec
from compiler.emit import NETC_PLUGIN_TYPE
from compiler.errors import NetcError
from compiler.ir import Cluster, Network
from compiler.quantities import format_quantity
from runtime.cli.common import EXIT_INVALID, SystemFailure, compile_paths, report
from runtime.cli.node_plans import networks_of as node_networks

if TYPE_CHECKING:
    from runtime.inventory import NetworkState

F = TypeVar("F", bound=Callable[..., Any])

EXIT_PROBLEMS = 1
STATUS_FORMAT = "1.0"
"""The `format_version` of `netc status --format json`."""


def networks_of(inputs: tuple[str, ...], node: str | None) -> list[Network]:
    """The networks of `.netdsl` files, or of the netc conflists in one directory."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        return _from_conflists(Path(inputs[0]))
    compilation, sources = compile_paths(inputs)
    report(compilation.diagnostics, sources)
    if not compilation.ok:
        sys.exit(EXIT_INVALID)
    return node_networks(compilation, node)


def _from_conflists(directory: Path) -> list[Network]:
    found = []
    for path in sorted(directory.glob("*.conflist")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for plugin in document.get("plugins", []):
            embedded = plugin.get("netc") if plugin.get("type") == NETC_PLUGIN_TYPE else None
            if isinstance(embedded, dict):
                found.append(ir_codec.decode(embedded["network"]))
    if not found:
        raise click.UsageError(f"{directory} holds no conflist of netc's plugin")
    return found


NODE_OPTIONS = [
    click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True)),
    click.option("--node", help="The node of a cluster these networks are built for."),
    click.option("--node-netns", help="Inspect this network namespace as the node (tests)."),
]


def _with_node_options(command: F) -> F:
    for option in reversed(NODE_OPTIONS):
        command = option(command)
    return command


@click.command()
@_with_node_options
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--membership",
    "members_file",
    default="/run/netc/membership.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The agent's account of a dynamic cluster's members (shown when it exists).",
)
def status(
    inputs: tuple[str, ...],
    node: str | None,
    node_netns: str | None,
    output: str,
    members_file: str,
) -> None:
    """What the node holds for the networks of INPUTS, and what does not add up.

    INPUTS: .netdsl files, or a directory of conflists such as /etc/cni/net.d.
    With a dynamic cluster, the membership the agent follows: its source, this
    node's block and lease, every member and when it was last seen.  Exit 0
    when everything is consistent, 1 when something is not (a datastore the
    agent cannot reach included), 3 when the node cannot be inspected.
    """
    from runtime.inventory import inspect
    from runtime.netns import node_namespace

    members = _members(members_file)
    try:
        networks = networks_of(inputs, node)
    except click.UsageError:
        if members is None or not members["condition"]:
            raise
        networks = []  # kept out of its cluster, it has no conflist: the condition says why
    try:
        with node_namespace(node_netns):
            states = inspect(networks)
    except (NetcError, OSError) as error:
        raise SystemFailure(str(error)) from error
    if output == "json":
        document: dict[str, Any] = {
            "format_version": STATUS_FORMAT,
            "networks": [s.to_json() for s in states],
        }
        if members is not None:
            document["membership"] = members
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(_members_text(members) + (_status_text(states) if networks else ""), nl=False)
    if any(s.problems for s in states) or (members is not None and members["condition"]):
        sys.exit(EXIT_PROBLEMS)


def _members(path: str) -> dict[str, Any] | None:
    """The agent's membership file, if there is one netc can read."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise SystemFailure(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != 1:
        raise SystemFailure(f"{path} is not a membership file of format 1")
    return document


def _members_text(document: dict[str, Any] | None) -> str:
    if document is None:
        return ""
    subnets = document.get("subnets") or []
    if document["block"] is not None:
        held = f"holds block {document['block']} (lease {document['lease']}, {document['ttl']} s)"
    else:
        held = (
            f"has pod subnets {', '.join(subnets)}"
            if subnets
            else "is no member"
            if document["source"] == "kubernetes"
            else "holds no block"
        )
    lines = [
        f"cluster {document['cluster']} ({document['source']} membership): "
        f"node {document['node']} {held}, {len(document['members'])} members"
    ]
    for member in document["members"]:
        place = (
            f"block {member['block']}"
            if member["block"] is not None
            else ", ".join(member.get("subnets") or [])
        )
        lines.append(
            f"  {member['name']}  {place}  "
            f"{', '.join(member['addresses'])}  seen {member['last_seen']}"
        )
    if document["condition"]:
        lines.append(f"  ! {document['condition']}")
    return "\n".join(lines) + "\n"


def _status_text(states: Sequence[NetworkState]) -> str:
    lines = []
    for state in states:
        lines.append(
            f"network {state.network}: {len(state.attachments)} attachments, "
            f"{len(state.reservations)} reservations, {len(state.claims)} host ports"
        )
        for a in state.attachments:
            rates = " ".join(f"{d} {format_quantity(r)}" for d, r in a.rates.items())
            columns = [
                f"{a.container_id[:12]} {a.ifname}",
                ", ".join(a.addresses) or "-",
                " ".join(a.ports),
                rates,
                f"since {a.to_json()['since']}",
            ]
            lines.append("  " + "  ".join(c for c in columns if c))
        for problem in state.problems:
            lines.append(
                f"  ! {problem.kind}: {problem.subject}: {problem.detail} -- {problem.remedy}"
            )
    total = sum(len(s.problems) for s in states)
    lines.append(f"{total} problem{'s' if total != 1 else ''}" if total else "consistent")
    return "\n".join(lines) + "\n"


@click.command()
@_with_node_options
@click.option("--cri-socket", help="Ask this CRI socket which pod sandboxes are alive.")
@click.option(
    "--alive",
    "alive_ids",
    multiple=True,
    help="A container (sandbox) ID that is alive; repeatable.",
)
@click.option("--apply", "act", is_flag=True, help="Collect; without it, only say what.")
def gc(
    inputs: tuple[str, ...],
    node: str | None,
    node_netns: str | None,
    cri_socket: str | None,
    alive_ids: tuple[str, ...],
    act: bool,
) -> None:
    """Run DEL for every attachment of INPUTS' networks whose container is gone.

    Which containers are alive is never guessed: the runtime is asked through
    its CRI socket (--cri-socket), or they are listed (--alive).  A dry run
    unless --apply.
    """
    from runtime.cri import alive_sandboxes
    from runtime.detach import collect
    from runtime.netns import node_namespace

    if cri_socket is None and not alive_ids:
        raise click.UsageError(
            "gc needs to know which containers are alive: give --cri-socket PATH or --alive ID"
        )
    networks = networks_of(inputs, node)
    try:
        alive = set(alive_ids) | (alive_sandboxes(cri_socket) if cri_socket else set())
        with node_namespace(node_netns):
            for network in networks:
                done = collect(network, lambda c, _i: c in alive, dry_run=not act)
                for item in done:
                    verb = "collected" if act else "would collect"
                    failed = f" -- failed: {item.error}" if item.error else ""
                    click.echo(
                        f"{verb} {item.container_id}/{item.ifname} on {network.name} "
                        f"({', '.join(item.evidence)}){failed}"
                    )
                if not done:
                    click.echo(f"nothing to collect on {network.name}")
    except NetcError as error:
        raise SystemFailure(str(error)) from error


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--node", help="The node of a cluster these networks are built for.")
@click.option("--node-netns", help="Work in this network namespace as the node (tests).")
@click.option("--cni-conf-dir", default="/etc/cni/net.d", show_default=True)
@click.option("--cni-bin-dir", default="/opt/cni/bin", show_default=True)
@click.option(
    "--socket",
    default="/run/netc/cni.sock",
    show_default=True,
    help="The warm server's socket (refused while a server answers there).",
)
@click.option(
    "--memory-dir",
    default="/var/lib/netc",
    show_default=True,
    help="Where a node of a dynamic cluster remembers its block.",
)
@click.option("--force", is_flag=True, help="Run the DEL of pods still attached, then remove.")
@click.option("--apply", "act", is_flag=True, help="Remove; without it, only say what.")
def uninstall(
    inputs: tuple[str, ...],
    node: str | None,
    node_netns: str | None,
    cni_conf_dir: str,
    cni_bin_dir: str,
    socket: str,
    memory_dir: str,
    force: bool,
    act: bool,
) -> None:
    """Remove everything netc put on this node for the networks of INPUTS.

    INPUTS: the .netdsl files, or the agent's configuration (the ConfigMap's
    netc.json).  Conflists and plugin files netc wrote, its socket, the
    networks' iptables chains, bridges, routes and VXLAN device, their state
    and IPAM files; forwarding and the bridge sysctls stay.  Refused (exit 1)
    while a pod is attached, unless --force, and while the agent runs.  A dry
    run unless --apply.
    """
    from compiler.cluster import NodeUnknown, networks_for_node
    from runtime import uninstall as removal
    from runtime.netns import node_namespace

    clusters, networks = _configuration(inputs)
    cluster = next((c for c in clusters if node is not None and c.node(node)), None)
    try:
        built = networks_for_node(networks, clusters, node) if node else networks
    except NodeUnknown as error:
        raise click.UsageError(error.message) from error
    if node is None and any(n.ipam and n.ipam.cluster for n in networks):
        raise click.UsageError("these networks draw from a cluster: give --node NAME")
    where = removal.Node(cni_conf_dir, cni_bin_dir, socket, memory_dir)
    try:
        with node_namespace(node_netns), removal.opened() as host:
            found = removal.steps(host, built, cluster, node or "", where, force=force)
            if act:
                removal.carry_out(found, click.echo)
            else:
                for step in found:
                    click.echo(f"would remove {step.what}" if step.act else f"stays: {step.what}")
    except removal.Refused as error:
        click.echo(f"netc uninstall: nothing removed: {error}\nhint: {error.details}", err=True)
        sys.exit(EXIT_INVALID)
    except (NetcError, OSError) as error:
        raise SystemFailure(str(error)) from error


def _configuration(inputs: tuple[str, ...]) -> tuple[list[Cluster], list[Network]]:
    """The clusters and networks of .netdsl files, or of the agent's configuration."""
    if len(inputs) == 1 and inputs[0].endswith(".json"):
        from runtime.agent import Snapshot

        try:
            return Snapshot.of(inputs[0]).parsed()
        except NetcError as error:
            raise click.UsageError(str(error)) from error
    compilation, sources = compile_paths(inputs)
    report(compilation.diagnostics, sources)
    if not compilation.ok:
        sys.exit(EXIT_INVALID)
    return list(compilation.clusters), list(compilation.networks)
