"""The `netc` command line: a thin shell around the compiler and the runtime.

This package does the I/O the pure stages must not do -- reading sources,
writing conflists, printing -- and maps outcomes to the exit codes described
in `runtime.cli.common`.  Subcommands are imported when they run: `netc
check` need not load the runtime, nor `netc run` the planner's renderers.
"""

from __future__ import annotations

import importlib
import os

import click

COMMANDS = {
    "build": "runtime.cli.build:build",
    "check": "runtime.cli.check:check",
    "fmt": "runtime.cli.fmt:fmt",
    "plan": "runtime.cli.plan:plan_command",
    "import": "runtime.cli.importing:import_command",
    "apply": "runtime.cli.apply:apply_command",
    "run": "runtime.cli.plugin:run",
    "install-plugin": "runtime.cli.plugin:install_plugin",
    "serve-cni": "runtime.cli.plugin:serve_cni",
    "agent": "runtime.cli.deploy:agent",
    "leave": "runtime.cli.deploy:leave",
    "artifact": "runtime.cli.deploy:artifact",
    "image": "runtime.cli.deploy:image",
    "status": "runtime.cli.node:status",
    "gc": "runtime.cli.node:gc",
    "uninstall": "runtime.cli.node:uninstall",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(module), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"COMMANDS[{cmd_name!r}] names {target}, which is no click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netc")
def main() -> None:
    """netc: describe pod networks in .netdsl, compile them to CNI conflists and plans."""
    backend = os.environ.get("NETC_IPTABLES")
    if backend:  # the iptables backend every command runs (runtime/iptables.py)
        from runtime.iptables import use_backend

        try:
            use_backend(backend)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
