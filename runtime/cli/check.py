"""`netc check`: validate only, every problem of every file in one run."""

from __future__ import annotations

import sys

import click

from runtime.cli.common import EXIT_INVALID, compile_paths, netdsl_files, report


@click.command()
@netdsl_files
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="json: a versioned document on stdout; github: Actions annotations.",
)
def check(files: tuple[str, ...], output: str) -> None:
    """Validate FILES; exit 0 when valid, 1 when not."""
    compilation, sources = compile_paths(files)
    report(compilation.diagnostics, sources, output)
    if not compilation.ok:
        sys.exit(EXIT_INVALID)
    if output == "text":
        count = len(compilation.networks)
        click.echo(f"{count} network{'s' if count != 1 else ''} valid", err=True)
