"""`netc build`: conflists for /etc/cni/net.d (or a cluster's manifests), with a CI drift gate.

Conflists go to stdout -- one as its file holds it, several as one JSON
object keyed by file name -- or into `--out DIR`, which netc owns as far as
it wrote there (`runtime.outdir`).  `--format json` prints one document with
the diagnostics, the conflists and what became of each file.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from compiler import emit
from compiler.cluster import NodeUnknown, cluster_of, needs_node, networks_for_node, nodes
from compiler.diagnostics import Diagnostic, has_errors, json_document, sort_diagnostics
from compiler.ir import Cluster, Network
from compiler.kubernetes import Rollout, manifests, render_manifests, rollout_diagnostics
from compiler.source import SourceFile
from compiler.versions import CNI_VERSIONS
from runtime.cli.common import EXIT_INVALID, SystemFailure, compile_paths, netdsl_files, report
from runtime.cli.completion import network_names
from runtime.install import netc_version
from runtime.outdir import (
    DirectoryPlan,
    FileAction,
    FileChange,
    InTheWay,
    Output,
    carry_out,
    plan_directory,
)

KUBERNETES = "kubernetes"
MANIFEST_FILE = "netc.yaml"


@click.command()
@netdsl_files
@click.option(
    "--target",
    type=click.Choice([*emit.TARGETS, KUBERNETES]),
    default="reference",
    show_default=True,
    help="reference: stock plugins; netc: netc's own runtime "
    "plugin; kubernetes: the manifests that roll netc out on a cluster.",
)
@click.option(
    "--cni-version",
    type=click.Choice(CNI_VERSIONS),
    help="cniVersion for every network (default: the source's, else 1.0.0).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write NN-name.conflist files here instead of printing.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; show a diff and exit 1 if the files in --out would change.",
)
@click.option("--network", "only", shell_complete=network_names, help="Build only this network.")
@click.option("--node", help="Build the networks as this node of a cluster runs them.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one document on stdout, errors included.",
)
@click.option(
    "--image",
    help="kubernetes: the agent's image (default localhost/netc:VERSION, "
    "what `make image` builds).",
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["IfNotPresent", "Always", "Never"]),
    default="IfNotPresent",
    show_default=True,
    help="kubernetes: its pull policy.",
)
@click.option(
    "--namespace",
    "k8s_namespace",
    default="netc-system",
    show_default=True,
    help="kubernetes: the namespace of the agents.",
)
@click.option(
    "--cni-conf-dir",
    default="/etc/cni/net.d",
    show_default=True,
    help="kubernetes: where the nodes' runtimes read conflists.",
)
@click.option(
    "--cni-bin-dir",
    default="/opt/cni/bin",
    show_default=True,
    help="kubernetes: where the nodes' runtimes find plugins.",
)
@click.option(
    "--warm-socket",
    default="/run/netc/cni.sock",
    show_default=True,
    help="kubernetes: the agents' warm server socket on the nodes.",
)
@click.option(
    "--etcd-secret",
    default="netc-etcd",
    show_default=True,
    help="kubernetes: the Secret with the etcd client's ca.crt, tls.crt and tls.key "
    "(clusters with etcd membership).",
)
@click.option(
    "--load-modules",
    is_flag=True,
    help="kubernetes: let the agents load br_netfilter and vxlan on nodes that do not "
    "(SYS_MODULE and the node's /lib/modules, read-only).",
)
@click.option(
    "--host-pid",
    is_flag=True,
    help="kubernetes: the agents in the host's PID namespace, where their warm server "
    "sees the runtime calling it: for nodes on Linux before 6.5.",
)
@click.option(
    "--agent-log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="kubernetes: the agents' log, text or JSON (an object per line).",
)
def build(
    files: tuple[str, ...],
    target: str,
    cni_version: str | None,
    out_dir: Path | None,
    check: bool,
    only: str | None,
    node: str | None,
    output: str,
    image: str | None,
    image_pull_policy: str,
    k8s_namespace: str,
    cni_conf_dir: str,
    cni_bin_dir: str,
    warm_socket: str,
    etcd_secret: str,
    load_modules: bool,
    host_pid: bool,
    agent_log_format: str,
) -> None:
    """Compile FILES (`-`: standard input) to CNI network configuration lists.

    Networks that draw from a cluster are built for one node (--node), or for
    every node of the cluster into DIR/NODE/ (--out DIR without --node).
    `--target kubernetes` prints the Namespace, ConfigMap and DaemonSet that
    roll netc out on the cluster.
    """
    if check and out_dir is None:
        raise click.UsageError("--check compares with the files in --out; give --out DIR")
    compilation, sources = compile_paths(files)
    networks = [n for n in compilation.networks if only in (None, n.name)]
    if only is not None and compilation.networks and not networks:
        raise click.UsageError(f"no network named {only!r} in the input")
    result = _Result(list(compilation.diagnostics), sources, output)
    if not compilation.ok:
        result.finish(EXIT_INVALID)
    if target == KUBERNETES:
        result.diagnostics += rollout_diagnostics(networks)
        if has_errors(result.diagnostics):
            result.finish(EXIT_INVALID)
        rollout = Rollout(
            image or f"localhost/netc:{netc_version()}",
            image_pull_policy,
            k8s_namespace,
            cni_conf_dir,
            cni_bin_dir,
            warm_socket=warm_socket,
            etcd_secret=etcd_secret,
            load_modules=load_modules,
            host_pid=host_pid,
            log_format=agent_log_format,
        )
        text = _manifests(compilation.clusters, networks, rollout)
        result.emit({MANIFEST_FILE: Output("", text)}, out_dir, check, None)
    builds = _per_node(networks, compilation.clusters, node, out_dir is not None)
    result.diagnostics += sort_diagnostics(
        list(
            dict.fromkeys(
                d
                for built in builds.values()
                for n in built
                for d in emit.target_diagnostics(
                    n, target, cni_version or n.cni_version, compilation.clusters
                )
            )
        )
    )
    if has_errors(result.diagnostics):
        result.finish(EXIT_INVALID)
    conflists = {
        f"{folder}{emit.file_name(n)}": (n.name, emit.conflist(n, target, cni_version))
        for folder, built in builds.items()
        for n in built
    }
    result.conflists = {name: document for name, (_, document) in conflists.items()}
    outputs = {
        name: Output(network, emit.render(document))
        for name, (network, document) in conflists.items()
    }
    result.emit(
        outputs, out_dir, check, None if only is None else {only}, stdout=_stdout(result.conflists)
    )


def _stdout(conflists: dict[str, dict[str, Any]]) -> str:
    """One conflist as a file would hold it; several as one object keyed by file name."""
    if len(conflists) == 1:
        return emit.render(next(iter(conflists.values())))
    return emit.render(conflists) if conflists else ""


def _manifests(clusters: tuple[Cluster, ...], networks: Sequence[Network], rollout: Rollout) -> str:
    """The manifests as one YAML stream for `kubectl apply -f`."""
    refused = [n.name for n in networks if n.bridge is None]
    if refused:
        raise click.UsageError(
            f"network {refused[0]} uses a third-party plugin; the netc "
            "agent runs bridge networks (build it with --target reference)"
        )
    return render_manifests(manifests(clusters, networks, rollout))


def _per_node(
    networks: list[Network], clusters: tuple[Cluster, ...], node: str | None, to_folders: bool
) -> dict[str, list[Network]]:
    """The networks to build, by output folder ("" or "NODE/")."""
    try:
        if node is not None:
            return {"": networks_for_node(networks, clusters, node)}
        pending = needs_node(networks)
        if not pending:
            return {"": networks}
        if not to_folders:
            raise click.UsageError(
                f"network {pending[0].name} draws its subnets from cluster "
                f"{pending[0].ipam.cluster if pending[0].ipam else '?'}: give --node NAME, or "
                "--out DIR to write every node's conflists to DIR/NODE/"
            )
        _refuse_dynamic(pending, clusters)
        return {f"{name}/": networks_for_node(networks, clusters, name) for name in nodes(clusters)}
    except NodeUnknown as error:
        raise click.UsageError(error.message) from error


def _refuse_dynamic(pending: Sequence[Network], clusters: Sequence[Cluster]) -> None:
    """No folder per node for a dynamic cluster: its nodes are not known before run time.

    Folders for its pinned nodes alone would look like the whole cluster.
    """
    dynamic = next(
        (c for n in pending if (c := cluster_of(n, clusters)) and c.membership.dynamic), None
    )
    if dynamic is not None:
        raise click.UsageError(
            f"cluster {dynamic.name} takes its members from {dynamic.membership.source}: each "
            "node's agent (netc agent) writes that node's conflists once it holds a block, so "
            "there is no folder per node to write"
            + (
                ""
                if dynamic.membership.source == "kubernetes"
                else "; give --node NAME for a pinned node's"
            )
        )


class _Result:
    """What a build prints at the end: text on stderr, or one JSON document on stdout."""

    def __init__(
        self, diagnostics: list[Diagnostic], sources: dict[str, SourceFile], output: str
    ) -> None:
        self.diagnostics = diagnostics
        self.sources = sources
        self.output = output
        self.conflists: dict[str, dict[str, Any]] = {}
        self.refused = ""

    def emit(
        self,
        outputs: Mapping[str, Output],
        out_dir: Path | None,
        check: bool,
        networks: set[str] | None,
        stdout: str | None = None,
    ) -> NoReturn:
        """To stdout, or into --out (owned, compared with --check); then finish."""
        if out_dir is None:
            self.finish(
                0, stdout="".join(o.text for o in outputs.values()) if stdout is None else stdout
            )
        try:
            plan = plan_directory(str(out_dir), outputs, networks)
        except InTheWay as error:
            raise click.ClickException(f"{error}\nhint: {error.details}") from error
        if check:
            self.finish(_check(out_dir, plan, self.output), _states(out_dir, plan, True))
        refusal = _refusal(out_dir, plan)
        if refusal:
            self.refused = refusal
            self.finish(EXIT_INVALID, _states(out_dir, plan, True))
        self.finish(_write(out_dir, plan, self.output), _states(out_dir, plan, False))

    def finish(self, code: int, files: dict[str, str] | None = None, stdout: str = "") -> NoReturn:
        """Print the diagnostics (and the JSON document), then exit with `code`."""
        if self.output == "json":
            document = json_document(self.diagnostics, self.sources)
            document["conflists"] = self.conflists
            if files:
                document["files"] = files
            if self.refused:
                document["refused"] = self.refused
            click.echo(json.dumps(document, indent=2))
        else:
            report(self.diagnostics, self.sources)
            if self.refused:  # last, where it cannot be missed
                click.echo(self.refused, err=True)
            click.echo(stdout, nl=False)
        sys.exit(code)


def _states(out_dir: Path, plan: DirectoryPlan, checking: bool) -> dict[str, str]:
    """What became (or, with --check, would become) of each file, for the JSON document."""
    words = {
        FileAction.WRITE: ("would change", "written"),
        FileAction.UNCHANGED: ("up to date", "unchanged"),
        FileAction.REMOVE: ("would be removed", "removed"),
        FileAction.EDITED: ("edited since written", "edited since written"),
    }
    states = {str(out_dir / c.name): words[c.action][0 if checking else 1] for c in plan.changes}
    created = {
        str(out_dir / c.name): "would be created"
        for c in plan.changes
        if checking and c.action == FileAction.WRITE and c.current is None
    }
    return states | created


def _refusal(out_dir: Path, plan: DirectoryPlan) -> str:
    """Why nothing may be written: files netc wrote, no longer builds, and someone edited.

    netc will not remove an edit, and must not leave it either: runtimes load every
    conflist and take the lexically first, so an old `20-pods.conflist` keeps the node
    on the old network beside the new `30-pods.conflist`.  Someone has to decide.
    """
    edited = [c for c in plan.changes if c.action == FileAction.EDITED]
    if not edited:
        return ""
    many = len(edited) != 1
    lines = [
        f"netc build: error: nothing written into {out_dir}: "
        + (f"{len(edited)} files" if many else "a file")
        + " netc wrote and no longer builds "
        + ("were" if many else "was")
        + " edited by hand since (netc never removes an edit)"
    ]
    for change in edited:
        lines.append(f"  {out_dir / change.name}: {_shadows(change, plan)}")
    lines.append(
        "hint: keep what you need of the edit in the .netdsl, delete the file (or "
        "move it out of the directory) and build again"
    )
    return "\n".join(lines)


def _shadows(edited: FileChange, plan: DirectoryPlan) -> str:
    """What the edited file does to the node if it stays."""
    successor = next(
        (c.name for c in plan.changes if c.wanted is not None and c.network == edited.network), None
    )
    if successor is None:
        return (
            f"network {edited.network} is no longer built, but runtimes would still load this file"
        )
    order = "before" if edited.name < successor else "beside"
    return (
        f"network {edited.network} is now {successor}; runtimes would load this file "
        f"{order} it (they take the lexically first conflist)"
    )


def _check(out_dir: Path, plan: DirectoryPlan, output: str) -> int:
    drift = sum(c.drift for c in plan.changes)
    if output != "text":
        return EXIT_INVALID if drift else 0
    for change in plan.changes:
        path = out_dir / change.name
        if change.action == FileAction.WRITE:
            diff = difflib.unified_diff(
                (change.current or "").splitlines(keepends=True),
                (change.wanted or "").splitlines(keepends=True),
                fromfile=str(path) if change.current is not None else "/dev/null",
                tofile=str(path),
            )
            click.echo("".join(diff), nl=False)
        elif change.action == FileAction.REMOVE:
            click.echo(f"would remove {path}: netc wrote it, no network builds it now")
        elif change.action == FileAction.EDITED:
            click.echo(
                f"{path}: netc wrote it, no network builds it now, and it was edited "
                "since: a build refuses until it is removed",
                err=True,
            )
    if drift:
        edited = any(c.action == FileAction.EDITED for c in plan.changes)
        click.echo(
            f"{drift} of {len(plan.changes)} files would change; "
            + (
                "remove the edited file, then run netc build"
                if edited
                else "run netc build without --check to write them"
            ),
            err=True,
        )
        return EXIT_INVALID
    count = len(plan.changes)
    noun = "manifest" if {c.name for c in plan.changes} == {MANIFEST_FILE} else "conflist"
    click.echo(f"{count} {noun}{'s' if count != 1 else ''} up to date", err=True)
    return 0


def _write(out_dir: Path, plan: DirectoryPlan, output: str) -> int:
    try:
        carry_out(str(out_dir), plan)
    except OSError as error:
        raise SystemFailure(f"cannot write into {out_dir}: {error.strerror}") from error
    verbs = {
        FileAction.WRITE: "wrote",
        FileAction.UNCHANGED: "unchanged",
        FileAction.REMOVE: "removed",
    }
    if output == "text":
        for change in plan.changes:
            click.echo(f"{verbs[change.action]} {out_dir / change.name}", err=True)
    return 0
