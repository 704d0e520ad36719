"""`netc run` and `netc install-plugin`: the commands that act on a machine.

They live in the CLI because they are user commands; what they do lives in
`runtime/` (the driver and the installer), which is the only place with
side effects.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from compiler.planner.context import (
    ContextError,
    bandwidth_from_option,
    mapping_from_option,
)
from runtime.cli.common import EXIT_INVALID, SystemFailure


@click.command("install-plugin")
@click.option(
    "--bin-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="A CNI plugin directory, such as /opt/cni/bin.",
)
@click.option(
    "--python",
    "python",
    type=click.Path(exists=True, dir_okay=False),
    help="The interpreter the cold path runs with (default: this one).",
)
@click.option("--warm-socket", help="Hand calls to `netc serve-cni` on this socket when it runs.")
def install_plugin(bin_dir: Path, python: str | None, warm_socket: str | None) -> None:
    """Write netc-cni into BIN_DIR: the compiled shim and its cold Python launcher.

    Without a C compiler, the Python launcher alone (absolute interpreter path).
    """
    from runtime.install import install_plugin as install

    try:
        lines = install(bin_dir, python, warm_socket)
    except OSError as error:
        raise SystemFailure(f"cannot write into {bin_dir}: {error.strerror}") from error
    for line in lines:
        click.echo(line, err=True)


@click.command("serve-cni")
@click.option(
    "--socket",
    "path",
    default="/run/netc/cni.sock",
    show_default=True,
    help="The unix socket launchers connect to.",
)
@click.option(
    "--handover-timeout",
    type=click.FloatRange(min=0.01),
    default=5.0,
    show_default=True,
    help="Seconds a connection may take to hand its call over before it is dropped.",
)
@click.option(
    "--host-mount-ns",
    type=click.Path(exists=True, dir_okay=False),
    help="Start programs (iptables-restore, conntrack, modprobe) in this mount "
    "namespace, e.g. /proc/1/ns/mnt (default: the server's own).",
)
@click.option(
    "--report-fd",
    type=click.IntRange(min=3),
    help="An open descriptor (a pipe) to write one JSON line per call to: command, "
    "result, duration, lock waits (the agent's metrics).",
)
def serve_cni(
    path: str, handover_timeout: float, host_mount_ns: str | None, report_fd: int | None
) -> None:
    """Keep netc-cni loaded and run calls handed over by warm launchers (root)."""
    from runtime.cni.server import UnsafeSocketDirectory, serve
    from runtime.install import identity

    try:
        serve(path, identity(), handover_timeout, host_mount_ns, report_fd)
    except UnsafeSocketDirectory as error:
        raise SystemFailure(f"{error} ({error.details})") from error


@click.command("run")
@click.argument("command", type=click.Choice(["add", "del", "check"], case_sensitive=False))
@click.argument("conflist", type=click.Path(exists=True, dir_okay=False))
@click.option("--netns", help="The pod's network namespace path.")
@click.option("--container-id", required=True)
@click.option("--ifname", default="eth0", show_default=True)
@click.option(
    "--port", "ports", multiple=True, help="HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]; repeatable."
)
@click.option("--bandwidth", help="ingress=RATE,egress=RATE (Kubernetes quantities).")
@click.option("--args", "cni_args", default="", help="CNI_ARGS, K=V;K=V.")
@click.option(
    "--cni-path",
    default="/opt/cni/bin:/usr/lib/cni",
    show_default=True,
    help="Plugin directories, searched in order.",
)
@click.option(
    "--cache-dir",
    default="/var/lib/cni",
    show_default=True,
    help="Where results are cached, as libcni does.",
)
@click.option("--node-netns", help="Run the plugins inside this network namespace (a name).")
def run(
    command: str,
    conflist: str,
    netns: str | None,
    container_id: str,
    ifname: str,
    ports: tuple[str, ...],
    bandwidth: str | None,
    cni_args: str,
    cni_path: str,
    cache_dir: str,
    node_netns: str | None,
) -> None:
    """Execute CONFLIST for one container, as a container runtime would."""
    from runtime import driver

    try:
        who = driver.Invocation(
            container_id,
            netns,
            ifname,
            cni_args,
            tuple(mapping_from_option(p) for p in ports),
            bandwidth_from_option(bandwidth) if bandwidth else None,
            tuple(filter(None, cni_path.split(":"))),
            cache_dir,
            node_netns,
        )
    except ContextError as error:
        raise click.BadParameter(str(error)) from error
    network = driver.Conflist(Path(conflist).read_bytes())
    step = {"add": driver.add, "del": driver.delete, "check": driver.check}[command.lower()]
    try:
        result = step(network, who)
    except driver.PluginFailed as error:
        click.echo(json.dumps(error.error, indent=2))
        sys.exit(EXIT_INVALID)
    except FileNotFoundError as error:
        raise SystemFailure(str(error)) from error
    if result is not None:
        click.echo(json.dumps(result, indent=2))
