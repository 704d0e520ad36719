"""`netc fmt`: rewrite files in the canonical layout, or `--check` them in CI."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import click

from compiler.fmt import format_document
from compiler.syntax import parse
from runtime.cli.common import (
    EXIT_INVALID,
    STDIN_NAME,
    SystemFailure,
    netdsl_files,
    read_sources,
    report,
    write_atomically,
)


@click.command()
@netdsl_files
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file is not formatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what would change; write nothing.")
def fmt(files: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Format FILES in netdsl's canonical layout (comments are kept).

    `-` formats standard input to standard output (for editors).  A symbolic
    link stays a link (its target is rewritten), and a file keeps its mode.
    """
    sources, problems, shown = read_sources(files)
    changed = []
    for source in sources:
        document, errors = parse(source)
        problems += errors
        if document is None:
            continue
        formatted = format_document(document)
        if source.name == STDIN_NAME:
            click.echo(formatted, nl=False)
            continue
        if formatted == source.text:
            continue
        changed.append(source.name)
        if show_diff:
            click.echo(
                "".join(
                    difflib.unified_diff(
                        source.text.splitlines(keepends=True),
                        formatted.splitlines(keepends=True),
                        fromfile=source.name,
                        tofile=source.name,
                    )
                ),
                nl=False,
            )
        elif check:
            click.echo(f"would reformat {source.name}")
        else:
            _rewrite(source.name, formatted)
            click.echo(f"formatted {source.name}", err=True)
    report(problems, shown)
    if problems or (changed and (check or show_diff)):
        sys.exit(EXIT_INVALID)


def _rewrite(name: str, text: str) -> None:
    """Replace a file's text in place of the file a link points to, with the file's mode."""
    target = Path(os.path.realpath(name))
    try:
        like = target.stat()
    except OSError as error:
        raise SystemFailure(f"cannot read {name}: {error.strerror}") from error
    write_atomically(target, text, like)
