"""The `netc` command line: a thin shell around the compiler and the runtime.

This package does the I/O the pure stages must not do -- reading sources,
writing conflists, printing -- and maps outcomes to the exit codes described
in `compiler.cli.common`.
"""

from __future__ import annotations

import click

from compiler.cli.build import build
from compiler.cli.check import check
from compiler.cli.fmt import fmt
from compiler.cli.plan import plan_command
from compiler.cli.runtime import install_plugin, run, serve_cni


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netc")
def main() -> None:
    """netc: describe pod networks in .netdsl, compile them to CNI conflists and plans."""


main.add_command(build)
main.add_command(check)
main.add_command(fmt)
main.add_command(plan_command, name="plan")
main.add_command(run)
main.add_command(install_plugin)
main.add_command(serve_cni)
