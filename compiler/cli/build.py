"""`netc build`: conflists for /etc/cni/net.d, deterministic, with a CI drift gate.

On standard output one network is its conflist, as it would be written to a
file, so `netc build pods.netdsl > 10-pods.conflist` works; several networks
are one JSON object mapping each file name `--out` would write to its
conflist.  `--format json` always prints one document for tools: the
diagnostics (as `netc check --format json`) with the conflists built, and
with `--out` what became of each file.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any

import click

from compiler import emit
from compiler.cli.common import (
    EXIT_INVALID,
    compile_paths,
    read_existing,
    report,
    single_stdin,
    write_atomically,
)
from compiler.cli.completion import network_names
from compiler.diagnostics import has_errors, json_document, sort_diagnostics
from compiler.source import SourceFile
from compiler.versions import CNI_VERSIONS


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True),
                callback=single_stdin)
@click.option("--target", type=click.Choice(emit.TARGETS), default="reference", show_default=True,
              help="reference: stock plugins; netc: netc's own runtime plugin.")
@click.option("--cni-version", type=click.Choice(CNI_VERSIONS),
              help="cniVersion for every network (default: the source's, else 1.0.0).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write NN-name.conflist files here instead of printing.")
@click.option("--check", is_flag=True,
              help="Write nothing; show a diff and exit 1 if the files in --out would change.")
@click.option("--network", "only", shell_complete=network_names, help="Build only this network.")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one document on stdout, errors included.")
def build(files: tuple[str, ...], target: str, cni_version: str | None, out_dir: Path | None,
          check: bool, only: str | None, output: str) -> None:
    """Compile FILES (`-`: standard input) to CNI network configuration lists."""
    if check and out_dir is None:
        raise click.UsageError("--check compares with the files in --out; give --out DIR")
    compilation, sources = compile_paths(files)
    networks = [n for n in compilation.networks if only in (None, n.name)]
    found = [d for n in networks
             for d in emit.target_diagnostics(n, target, cni_version or n.cni_version)]
    diagnostics = sort_diagnostics([*compilation.diagnostics, *found])
    if only is not None and compilation.networks and not networks:
        raise click.UsageError(f"no network named {only!r} in the input")
    invalid = has_errors(diagnostics)
    conflists = {} if invalid else {
        emit.file_name(n): emit.conflist(n, target, cni_version) for n in networks}
    result = _Result(diagnostics, sources, conflists, output)
    if invalid:
        result.finish({}, EXIT_INVALID)
    if out_dir is None:
        result.finish({}, 0, stdout=_stdout(conflists))
    elif check:
        result.finish(*_check(out_dir, conflists, output))
    else:
        result.finish(_write(out_dir, conflists, output), 0)


class _Result:
    """What a build prints at the end: text on stderr, or one JSON document on stdout."""

    def __init__(self, diagnostics, sources: dict[str, SourceFile],
                 conflists: dict[str, dict[str, Any]], output: str) -> None:
        self.diagnostics = diagnostics
        self.sources = sources
        self.conflists = conflists
        self.output = output

    def finish(self, files: dict[str, str], code: int, stdout: str = "") -> None:
        if self.output == "json":
            document = json_document(self.diagnostics, self.sources)
            document["conflists"] = self.conflists
            if files:
                document["files"] = files
            click.echo(json.dumps(document, indent=2))
        else:
            report(self.diagnostics, self.sources)
            click.echo(stdout, nl=False)
        sys.exit(code)


def _stdout(conflists: dict[str, dict[str, Any]]) -> str:
    """One conflist as a file would hold it; several as one object keyed by file name."""
    if len(conflists) == 1:
        return emit.render(next(iter(conflists.values())))
    return emit.render(conflists) if conflists else ""


def _check(out_dir: Path, conflists: dict[str, dict[str, Any]],
           output: str) -> tuple[dict[str, str], int]:
    states = {}
    for name, document in conflists.items():
        path, text = out_dir / name, emit.render(document)
        current = read_existing(path)
        states[str(path)] = "up to date" if current == text else (
            "would change" if current is not None else "would be created")
        if current != text and output == "text":
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=str(path) if current is not None else "/dev/null", tofile=str(path))
            click.echo("".join(diff), nl=False)
    drift = sum(state != "up to date" for state in states.values())
    if output == "text" and drift:
        click.echo(f"{drift} of {len(conflists)} conflists would change; run netc build "
                   "without --check to write them", err=True)
    elif output == "text":
        click.echo(f"{len(conflists)} conflists up to date", err=True)
    return states, EXIT_INVALID if drift else 0


def _write(out_dir: Path, conflists: dict[str, dict[str, Any]], output: str) -> dict[str, str]:
    states = {}
    for name, document in conflists.items():
        path, text = out_dir / name, emit.render(document)
        if read_existing(path) == text:
            states[str(path)] = "unchanged"
        else:
            write_atomically(path, text)
            states[str(path)] = "written"
        if output == "text":
            click.echo(f"{'wrote' if states[str(path)] == 'written' else 'unchanged'} {path}",
                       err=True)
    return states
