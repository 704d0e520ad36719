"""`netc build` and `netc check` on a large generated `.netdsl` file.

A cluster's whole network source in one CI job is the large case for the
compiler: here 10,000 lines by default (see bench.generate).  Wall time is
measured on the real command line, start-up included, since that is what CI
waits for.  The same work is also timed in this process -- compiling, then
emitting every conflist -- so the report can split a command's wall time
into start-up, front end and emitter.

`netc build` is run for both targets: the reference target also reports a
warning per unenforced policy (two per generated network), and rendering
those is part of what a user of that target waits for.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from bench.commands import Case, time_commands, tool
from bench.generate import netdsl
from bench.stats import summary, timed, timed_call
from compiler import emit
from compiler.pipeline import Compilation, compile_sources
from compiler.source import SourceFile


def commands(path: str) -> dict[str, Case]:
    """The command lines timed, by report label."""
    netc = tool("netc")
    return {
        "netc check": ([netc, "check", path], {}),
        "netc build --target netc": ([netc, "build", "--target", "netc", path], {}),
        "netc build --target reference": ([netc, "build", "--target", "reference", path], {}),
    }


def _emit_all(compilation: Compilation) -> list[str]:
    return [emit.render(emit.conflist(network, "netc")) for network in compilation.networks]


def in_process(text: str, path: str, repeats: int) -> dict[str, Any]:
    """Front end (`compile_sources`) and emitter (every network, netc target) in this process."""
    front, back = [], []
    for _ in range(repeats):
        seconds, compilation = timed_call(partial(compile_sources, [SourceFile(path, text)]))
        if not compilation.ok:
            raise RuntimeError(f"generated file does not compile: {compilation.diagnostics[0]}")
        front.append(seconds)
        back.append(timed(partial(_emit_all, compilation)))
    return {"compile_sources": summary(front), "emit_netc": summary(back)}


def run(tmp: Path, lines: int, repeats: int) -> dict[str, Any]:
    """Generate the file, then time each command and the in-process stages."""
    text, networks = netdsl(lines)
    path = tmp / "generated.netdsl"
    path.write_text(text)
    timings = time_commands(commands(str(path)), repeats)
    stages = in_process(text, str(path), repeats)
    return {
        "lines": text.count("\n"),
        "networks": networks,
        "bytes": len(text.encode()),
        "repeats": repeats,
        "commands": timings,
        "in_process": stages,
        "lines_per_second": round(text.count("\n") / stages["compile_sources"]["median_ms"] * 1000),
    }
