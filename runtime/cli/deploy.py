"""`netc agent`, `netc artifact`, `netc image`: what rolls netc out to nodes.

`netc agent` is the DaemonSet's container (runtime/agent.py); `netc
artifact` writes the self-contained plugin the agent installs on hosts;
`netc image` writes the agent's container image, offline (`make image`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler import kubernetes
from runtime.cli.common import SystemFailure
from runtime.events import FORMATS
from runtime.packaging import ARCHITECTURES, DEFAULT_CACHE


@click.command()
@click.option(
    "--config",
    required=True,
    type=click.Path(dir_okay=False),
    help="The compiled configuration (the ConfigMap's netc.json, mounted).",
)
@click.option(
    "--node-name",
    required=True,
    envvar="NODE_NAME",
    help="This node's Kubernetes name (the downward API's spec.nodeName).",
)
@click.option("--cni-conf-dir", default="/etc/cni/net.d", show_default=True)
@click.option("--cni-bin-dir", default="/opt/cni/bin", show_default=True)
@click.option(
    "--socket",
    default="/run/netc/cni.sock",
    show_default=True,
    help="The warm server's socket (the plugin the agent installs looks there).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between converging again without a change (drift repair).",
)
@click.option(
    "--health-port",
    type=int,
    default=kubernetes.HEALTH_PORT,
    show_default=True,
    help="GET 127.0.0.1:PORT/livez, /readyz and /metrics (0: none).",
)
@click.option(
    "--stall-after",
    type=click.FloatRange(min=1),
    help="Seconds without a turn of the agent's loop after which /livez fails "
    "(default: 3 intervals, at least 120).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="json: one JSON object per line, an event per change made to the node.",
)
@click.option("--node-netns", help="Work in this network namespace as the node (tests).")
@click.option(
    "--node-address",
    "node_addresses",
    multiple=True,
    metavar="ADDRESS/PREFIX",
    help="In a cluster with dynamic membership: this node's underlay address, one per "
    "family (default: the addresses of its default route's interface).",
)
@click.option(
    "--memory-dir",
    default="/var/lib/netc",
    show_default=True,
    help="Where a dynamic cluster's block is remembered across restarts and reboots.",
)
@click.option(
    "--proc-sys",
    default="/proc/sys",
    show_default=True,
    help="Where the node's sysctls are (the DaemonSet mounts the node's /proc/sys/net "
    "at /host/proc/sys/net: a container's /proc/sys is read-only).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="In a cluster of Kubernetes Nodes: the API server and credentials, when the "
    "agent runs outside a pod (default: the pod's service account).",
)
def agent(
    config: str,
    node_name: str,
    cni_conf_dir: str,
    cni_bin_dir: str,
    socket: str,
    interval: float,
    health_port: int,
    node_netns: str | None,
    node_addresses: tuple[str, ...],
    memory_dir: str,
    proc_sys: str,
    kubeconfig: str | None,
    stall_after: float | None,
    log_format: str,
) -> None:
    """The node agent: install the plugin, apply the node, serve, write the conflist; repeat."""
    from runtime.agent import Agent, Options

    options = Options(
        config,
        node_name,
        cni_conf_dir,
        cni_bin_dir,
        socket,
        interval,
        health_port=health_port or None,
        node_netns=node_netns,
        node_addresses=node_addresses,
        memory_dir=memory_dir,
        proc_sys=proc_sys,
        kubeconfig=kubeconfig,
        stall_after=stall_after,
        log_format=log_format,
    )
    sys.exit(Agent(options).run())


@click.command()
@click.option(
    "--config",
    required=True,
    type=click.Path(dir_okay=False),
    help="The compiled configuration (the ConfigMap's netc.json).",
)
@click.option(
    "--node-name",
    required=True,
    envvar="NODE_NAME",
    help="The node that leaves (its Kubernetes name).",
)
@click.option("--node-netns", help="Talk to the datastore from this network namespace (tests).")
@click.option(
    "--memory-dir",
    default="/var/lib/netc",
    show_default=True,
    help="Where the node remembers its block (forgotten on leaving).",
)
def leave(config: str, node_name: str, node_netns: str | None, memory_dir: str) -> None:
    """Take NODE out of its dynamic cluster now: its lease revoked, its block released.

    Every peer drops its routes at once.  For a node being removed (a preStop
    hook on drain, or by hand); an agent that merely stops keeps its block.
    """
    from runtime.agent import Snapshot
    from runtime.etcd import EtcdError
    from runtime.membership.etcd import leave as leave_cluster
    from runtime.netns import node_namespace

    clusters, _ = Snapshot.of(config).parsed()
    dynamic = [c for c in clusters if c.membership.dynamic]
    if not dynamic:
        raise click.UsageError(f"{config} has no cluster with dynamic membership")
    nodes = next((c for c in dynamic if c.membership.source == "kubernetes"), None)
    if nodes is not None:
        raise click.UsageError(
            f"the members of cluster {nodes.name} are its Kubernetes Nodes: a node leaves "
            f"when its Node is deleted (kubectl delete node {node_name}), and every peer "
            "drops its routes then"
        )
    try:
        with node_namespace(node_netns):
            for cluster in dynamic:
                click.echo(leave_cluster(cluster, node_name, memory_dir))
    except EtcdError as error:
        raise SystemFailure(str(error)) from error


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--warm-socket",
    default="/run/netc/cni.sock",
    show_default=True,
    help="Where its launcher looks for the warm server ('' for none).",
)
def artifact(out: Path, warm_socket: str) -> None:
    """Write the self-contained plugin (a shell line and a zip of netc) for hosts' python3."""
    from runtime.artifact import plugin_artifact
    from runtime.files import write_atomically

    try:
        write_atomically(str(out), plugin_artifact(warm_socket or None), durable=True, mode=0o755)
    except OSError as error:
        raise SystemFailure(f"cannot write {out}: {error.strerror}") from error
    click.echo(f"wrote {out}", err=True)


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", help="The image's name (default localhost/netc:VERSION).")
@click.option(
    "--arch",
    "architectures",
    multiple=True,
    type=click.Choice(sorted(ARCHITECTURES)),
    help="The image's architecture (default: this machine's).  Another one is "
    "assembled from Debian's packages of it.  Repeat it for an OCI index (--format oci).",
)
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["docker", "oci"]),
    default="docker",
    show_default=True,
    help="docker: a docker-archive of one image; oci: an OCI archive holding an index "
    "of one image per --arch.",
)
@click.option(
    "--debian-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CACHE,
    show_default=True,
    help="Where Debian's packages are kept: fetched once, then built from offline.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Resolve Debian's packages anew (security updates) instead of the cached ones.",
)
def image(
    out: Path,
    tag: str | None,
    architectures: tuple[str, ...],
    archive_format: str,
    debian_cache: Path,
    refresh: bool,
) -> None:
    """Write the agent's image: a docker-archive, or an OCI index of several architectures.

    `ctr images import` (with --all-platforms for an index) and `podman load` read both.
    """
    from runtime.debian import DebianError
    from runtime.install import netc_version
    from runtime.packaging import agent_docker_archive, agent_oci_archive, this_architecture
    from runtime.shim import ShimUnavailable

    if len(set(architectures)) != len(architectures):
        raise click.UsageError("an architecture is given twice")
    if archive_format == "docker" and len(architectures) > 1:
        raise click.UsageError("a docker-archive holds one architecture: use --format oci")
    reference = tag or f"localhost/netc:{netc_version()}"
    try:
        chosen = [ARCHITECTURES[a] for a in architectures] or [this_architecture()]
        out.parent.mkdir(parents=True, exist_ok=True)
        if archive_format == "docker":
            agent_docker_archive(out, reference, chosen[0], debian_cache, refresh=refresh)
        else:
            agent_oci_archive(out, reference, chosen, debian_cache, refresh=refresh)
    except (OSError, ValueError, RuntimeError, DebianError, ShimUnavailable) as error:
        raise SystemFailure(f"cannot build {out}: {error}") from error
    platforms = ", ".join(a.platform.name for a in chosen)
    click.echo(f"wrote {out} ({reference}: {platforms})", err=True)
