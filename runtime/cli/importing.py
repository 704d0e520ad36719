"""`netc import`: the `.netdsl` of conflists a node already has.

    netc import /etc/cni/net.d --out cluster/node.netdsl

Reads conflists and single-plugin `.conf` files (a directory stands for its
`*.conf`, `*.conflist` and `*.json` files in lexical order, as libcni loads
them), prints what it could not carry over -- `FILE: $.json.path: warning:
...` -- and writes the result, formatted as `netc fmt` would.  The
conversion itself is `compiler.conflist_import`, pure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from compiler.conflist_import import Imported, Level, import_conflists
from compiler.conflist_import.writer import one_line
from compiler.source import SourceFile
from runtime.cli.common import (
    EXIT_INVALID,
    STDIN,
    display_name,
    read_input,
    report,
    single_stdin,
    write_atomically,
)

CONFIG_SUFFIXES = (".conf", ".conflist", ".json")
"""The files libcni loads from a configuration directory."""


@click.command("import")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, allow_dash=True),
    callback=single_stdin,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the .netdsl to this file instead of printing it.",
)
@click.option("--force", is_flag=True, help="With --out: replace a file that exists.")
@click.option(
    "--strict",
    is_flag=True,
    help="Write nothing and exit 1 when a value would not come back the same (any warning).",
)
def import_command(files: tuple[str, ...], out: Path | None, force: bool, strict: bool) -> None:
    """Write the .netdsl of CNI conflists FILES (`-`: standard input; directories too).

    Exit 0 when every file was imported (warnings say what changes), 1 when
    a file could not be read as a network or the result breaks netc's rules,
    or with --strict when anything would not come back the same.
    """
    if out is not None and out.exists() and not force:
        raise click.UsageError(f"{out} exists; add --force to replace it")
    inputs = [(display_name(path), read_input(path)) for path in _expand(files)]
    result = import_conflists(inputs, str(out) if out else "<stdout>")
    for finding in result.findings:
        click.echo(str(finding), err=True)
    report(
        result.diagnostics,
        {str(out or "<stdout>"): SourceFile(str(out or "<stdout>"), result.text)},
    )
    changed = sum(f.level is Level.WARNING for f in result.findings)
    refused = strict and changed > 0
    if result.text and out is not None and not refused:
        write_atomically(out, result.text, mode=_mode(files))
        click.echo(f"wrote {out}", err=True)
    elif result.text and not refused:
        click.echo(result.text, nl=False)
    click.echo(_summary(result, len(inputs)), err=True)
    if refused:
        click.echo(
            f"netc import: --strict: {changed} value{'s' if changed != 1 else ''} "
            "would not come back the same: nothing written",
            err=True,
        )
    if not result.ok or refused:
        sys.exit(EXIT_INVALID)


def _expand(paths: tuple[str, ...]) -> list[str]:
    """Files as given; a directory as the configuration files in it, sorted.

    A symbolic link in a directory is not followed: it may lead anywhere (a
    token, a registry secret in JSON), and what it holds would become text of
    the output.  A file named on the command line is read wherever it is.
    """
    expanded = []
    for path in paths:
        if path != STDIN and Path(path).is_dir():
            candidates = sorted(p for p in Path(path).iterdir() if p.suffix in CONFIG_SUFFIXES)
            for link in (p for p in candidates if p.is_symlink()):
                click.echo(
                    f"{one_line(str(link))}: a symbolic link, not followed (name the "
                    "file it leads to, to import that)",
                    err=True,
                )
            found = [str(p) for p in candidates if p.is_file() and not p.is_symlink()]
            if not found:
                raise click.UsageError(f"{path} holds no .conf, .conflist or .json file")
            expanded += found
        else:
            expanded.append(path)
    return expanded


def _mode(paths: tuple[str, ...]) -> int:
    """The output's mode: 0644, less what an input denies (0600 inputs give 0600)."""
    mode = 0o644
    for path in paths:
        if path != STDIN:
            mode &= 0o600 | os.stat(path).st_mode
    return mode


def _summary(result: Imported, files: int) -> str:
    """`netc import: 2 networks from 3 files (0 errors, 1 warning, 4 notes)`."""
    counts = [(level, sum(f.level is level for f in result.findings)) for level in Level]
    found = ", ".join(f"{n} {level}{'s' if n != 1 else ''}" for level, n in counts)
    networks = len(result.networks)
    return (
        f"netc import: {networks} network{'s' if networks != 1 else ''} from {files} "
        f"file{'s' if files != 1 else ''} ({found})"
    )
