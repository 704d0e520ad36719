"""What every `netc` command shares: reading inputs, printing diagnostics, exit codes.

Exit codes (documented in README.md, tested in tests/cli):

    0  success
    1  invalid input, or `--check` found a difference
    2  usage error (unknown option, missing file)
    3  the system refused: a file could not be written, the kernel said no

`netc plan --detailed-exitcode` follows terraform instead: 0 nothing to do,
1 any error, 2 changes pending; `netc apply --detailed-exitcode` likewise,
with 2 for changes made.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from compiler.diagnostics import Diagnostic, render_github, render_json, render_text
from compiler.pipeline import Compilation, compile_sources
from compiler.source import SourceFile
from compiler.syntax import decode, quotable
from runtime import files

EXIT_INVALID = 1
EXIT_PENDING = 2
"""`--detailed-exitcode`: changes pending (`plan --live`) or made (`apply`)."""
EXIT_SYSTEM = 3


class SystemFailure(click.ClickException):
    """The machine refused something (I/O, permissions, the kernel): exit 3."""

    exit_code = EXIT_SYSTEM


class DetailedExitCommand(click.Command):
    """Usage errors exit 1 under --detailed-exitcode, where 2 means "changes"."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the arguments, remembering whether --detailed-exitcode was among them."""
        detailed = "--detailed-exitcode" in args
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            _remap(error, detailed)
            raise
        context.meta["detailed"] = detailed
        return context

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a usage error raised inside exits as parsing errors do."""
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            _remap(error, ctx.meta.get("detailed", False))
            raise


def _remap(error: click.UsageError, detailed: bool) -> None:
    """Show the error as click would, but exit 1 (click's exit code is fixed per class)."""
    if detailed:
        error.show()
        raise click.exceptions.Exit(EXIT_INVALID) from error


def read_sources(
    paths: Sequence[str],
) -> tuple[list[SourceFile], list[Diagnostic], dict[str, SourceFile]]:
    """Decode each input file; binary files become diagnostics.

    Returns the decoded sources, the diagnostics, and every file's text by name
    for quoting in diagnostics (refused files included, made printable).
    """
    sources: list[SourceFile] = []
    diagnostics: list[Diagnostic] = []
    shown: dict[str, SourceFile] = {}
    for path in paths:
        data = read_input(path)
        name = display_name(path)
        source, problems = decode(data, name)
        diagnostics += problems
        if source is not None:
            sources.append(source)
        quoted = source or quotable(data, name)
        if quoted is not None:
            shown[name] = quoted
    return sources, diagnostics, shown


STDIN = "-"
"""The file name that means standard input (`netc fmt -`, `netc build -`)."""
STDIN_NAME = "<stdin>"
"""How diagnostics name standard input."""


def display_name(path: str) -> str:
    """The name diagnostics give an input: its path, or `<stdin>`."""
    return STDIN_NAME if path == STDIN else path


def single_stdin(
    ctx: click.Context, param: click.Parameter, paths: tuple[str, ...]
) -> tuple[str, ...]:
    """A click callback: `-` may be given once (standard input can be read only once)."""
    if paths.count(STDIN) > 1:
        raise click.BadParameter("`-` (standard input) can be given only once", ctx, param)
    return paths


netdsl_files = click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    callback=single_stdin,
)
"""The `.netdsl` files a command reads (`-` once for standard input): check, build, plan, fmt."""


def read_input(path: str) -> bytes:
    """The bytes of an input file, or of standard input for `-`."""
    if path == STDIN:
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SystemFailure(f"cannot read {path}: {error.strerror}") from error


def compile_paths(paths: Sequence[str]) -> tuple[Compilation, dict[str, SourceFile]]:
    """Read and compile files together; decoding problems are part of the diagnostics."""
    sources, problems, shown = read_sources(paths)
    compilation = compile_sources(sources)
    if problems:
        compilation = Compilation((), (*problems, *compilation.diagnostics))
    return compilation, shown


def report(
    diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile], output: str = "text"
) -> None:
    """Diagnostics to stderr (text) or stdout (json, github: for tools and CI)."""
    if output == "json":
        click.echo(render_json(diagnostics, sources), nl=False)
    elif output == "github":
        click.echo(render_github(diagnostics), nl=False)
    elif diagnostics:
        click.echo(render_text(diagnostics, sources), nl=False, err=True)


def write_atomically(
    path: Path, text: str, like: os.stat_result | None = None, mode: int = 0o644
) -> None:
    """Write a file the way `runtime.files` writes state: temporary, fsync, rename.

    Watchers never see half a file.  The file gets `mode`, or the mode
    (and, where permitted, the owner) of `like`, the file it replaces.
    """
    mode = stat.S_IMODE(like.st_mode) if like else mode
    owner = (like.st_uid, like.st_gid) if like else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomically(str(path), text.encode(), durable=True, mode=mode, owner=owner)
    except OSError as error:
        raise SystemFailure(f"cannot write {path}: {error.strerror}") from error
