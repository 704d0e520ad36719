"""`netc plan --against OLD`: reading the old revision and printing the change plan.

OLD is a file or a directory holding the old revision of the same files
(matched by name), or a git revision of them (`HEAD`, `main`, `HEAD~1`),
read with `git show REV:PATH` -- what a pull request check compares.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import click
import yaml

from compiler import changes
from compiler.pipeline import Compilation, compile_sources
from compiler.source import SourceFile
from runtime.cli.common import EXIT_INVALID, SystemFailure, report

EXIT_CHANGES = 2


def old_sources(against: str, files: Sequence[str]) -> list[SourceFile]:
    """The old revision of `files`: from a file, a directory, or a git revision.

    Each is named where it was read (`../old/cluster.netdsl`, `HEAD~1:cluster.netdsl`), so
    what the new revision removed cites the old revision's lines, never the new file's.
    """
    path = Path(against)
    if path.is_file():
        return [SourceFile(str(path), path.read_text())]
    if path.is_dir():
        return [
            SourceFile(str(old), old.read_text())
            for name in files
            if (old := path / Path(name).name).exists()
        ]
    return [source for name in files if (source := _from_git(against, name)) is not None]


def _from_git(revision: str, name: str) -> SourceFile | None:
    """`name` as it was at `revision`; None when it did not exist yet (a new file).

    A revision starting with `-` is refused, and git is told where its options
    end: a CI parameter must never become one (`--output=FILE` writes a file).
    """
    if revision.startswith("-"):
        raise click.UsageError(
            f"--against {revision}: not a file or a directory, and a git "
            "revision cannot start with `-`"
        )
    here = Path(name).resolve()
    try:
        top = subprocess.run(
            ["git", "-C", str(here.parent), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise click.UsageError(
            f"--against {revision}: not a file, a directory or a git revision of {name}"
        ) from error
    relative = here.relative_to(top).as_posix()
    done = subprocess.run(
        ["git", "-C", top, "show", "--end-of-options", f"{revision}:{relative}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if "exists on disk, but not in" in done.stderr or "does not exist in" in done.stderr:
            return None
        raise click.UsageError(f"--against {revision}: {done.stderr.strip()}")
    return SourceFile(f"{revision}:{relative}", done.stdout)


def show(
    compilation: Compilation, against: str, files: Sequence[str], output: str, detailed: bool
) -> None:
    """Compare the new revision with the old one, print the change plan, exit."""
    try:
        old = compile_sources(old_sources(against, files))
    except OSError as error:
        raise SystemFailure(f"cannot read the old revision: {error}") from error
    if not old.ok:
        click.echo(f"netc plan: the old revision ({against}) does not compile:", err=True)
        report(old.diagnostics, {})
        sys.exit(EXIT_INVALID)
    found = changes.compare(old.networks, old.clusters, compilation.networks, compilation.clusters)
    if output == "json":
        click.echo(json.dumps(changes.document(found, against), indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(changes.document(found, against), sort_keys=False), nl=False)
    elif output == "github":
        click.echo(changes.render_github(found), nl=False)
    else:
        click.echo(changes.render_text(found, against), nl=False)
    if detailed and found:
        sys.exit(EXIT_CHANGES)
