"""Start-up of the command-line tools, and where netc-cni's start-up time goes.

netc-cni is a fresh interpreter for every ADD, DEL and CHECK, so its start-up
is a fixed tax on each pod; `netc` start-up is what an admin waits for on
every command.  Alongside the tools, two floors put the figures in scale:
a bare `python -IS` (what the launcher cannot go below) and a stock Go
plugin answering VERSION (what the reference pays per exec).

The `-X importtime` profile covers "the full plugin": every module of netc a
plugin call may import, found by following imports from the launcher's entry
(the ADD path loads its handlers lazily), so it shows the worst case a pod
pays, per module and per package.
"""

from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import runtime
from bench.commands import Case, run_quietly, time_commands, tool
from runtime.install import install

ENTRY = "runtime.cni.plugin"
PROJECT = str(Path(runtime.__file__).resolve().parent.parent)
VERSION_CALL = {"CNI_COMMAND": "VERSION"}
VERSION_STDIN = b'{"cniVersion": "1.0.0"}'
REFERENCE_PLUGIN = "/usr/lib/cni/bridge"


def module_file(name: str) -> Path | None:
    """The source file of one of netc's own modules, or None for stdlib/third-party ones."""
    base = Path(PROJECT, *name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    """Every module an import statement anywhere in the file may load (lazy ones included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)  # `from package import submodule` loads the submodule too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def plugin_modules() -> list[str]:
    """netc's modules a plugin call may import, in the order a call first reaches them.

    Followed statically through every import statement, including those inside
    functions (the plugin defers many), so the list is the worst case a pod
    pays and needs no upkeep when modules move.  Breadth-first from the entry:
    imported in this order, a module comes before what it pulls in, so the
    importtime profile charges each subtree to the module that brings it.
    """
    order = [ENTRY]
    for name in order:  # grows while it is walked: a breadth-first search
        path = module_file(name)
        for found in sorted(_imported_names(path)) if path else ():
            if found not in order and module_file(found) is not None:
                order.append(found)
    return order


def full_import_code() -> str:
    """Python source doing what the launcher does, then importing the whole plugin."""
    imports = "".join(f"import {name}\n" for name in plugin_modules())
    return f"import sys\nsys.path.insert(0, {PROJECT!r})\n{imports}"


def launcher_python(*arguments: str, python: str = sys.executable) -> list[str]:
    """The launcher's interpreter and flags (-I isolated, -S no site), plus `arguments`."""
    return [python, "-IS", *arguments]


def _plugin_call() -> dict[str, Any]:
    """How a runtime asks a plugin for VERSION: environment and stdin."""
    return {"env": {**os.environ, **VERSION_CALL}, "input": VERSION_STDIN}


def _other_python_cases(tmp: Path, python: str | None) -> dict[str, Case]:
    """The floor and netc-cni VERSION with the launcher on another interpreter (if given)."""
    if not python or not os.access(python, os.X_OK):
        return {}
    launcher = str(install(tmp / "bin-py3", python=python))
    return {
        f"{python} -IS (floor)": (launcher_python("-c", "pass", python=python), {}),
        f"netc-cni VERSION ({Path(python).name} launcher)": ([launcher], _plugin_call()),
    }


def measure_tools(
    tmp: Path, small_file: str, repeats: int, python: str | None = None
) -> dict[str, dict[str, Any]]:
    """Wall time of each start-up case over `repeats` interleaved runs, after a warm-up."""
    launcher = str(install(tmp / "bin"))
    netc = tool("netc")
    cases = {
        "python -IS (floor)": (launcher_python("-c", "pass"), {}),
        "netc --version": ([netc, "--version"], {}),
        f"netc check {Path(small_file).name}": ([netc, "check", small_file], {}),
        "netc-cni VERSION (launcher)": ([launcher], _plugin_call()),
        "launcher + full plugin import": (launcher_python("-c", full_import_code()), {}),
        **_other_python_cases(tmp, python),
        "reference bridge VERSION (Go)": ([REFERENCE_PLUGIN], _plugin_call()),
    }
    return time_commands(cases, repeats)


def _parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """`-X importtime` lines to {module: (self µs, cumulative µs)}."""
    found = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        found[name.strip()] = (int(own), int(cumulative))
    return found


def _profile_once() -> dict[str, tuple[int, int]]:
    done = subprocess.run(
        launcher_python("-X", "importtime", "-c", full_import_code()),
        capture_output=True,
        text=True,
        check=True,
    )
    return _parse_importtime(done.stderr)


def package_of(module: str) -> str:
    """netc's package (`compiler`, `runtime`), `stdlib`, or a third-party package's name.

    A third-party name here (lark, click, pyroute2) on the plugin path is news.
    """
    top = module.split(".", maxsplit=1)[0]
    if module_file(top) is not None:
        return top
    return "stdlib" if top in sys.stdlib_module_names else top


def import_profile(repeats: int, top: int = 15) -> dict[str, Any]:
    """Median self and cumulative import time per module over `repeats` runs, ranked.

    A single importtime run is noisy (one page fault moves a module up the
    list), so each module's figure is its median over the runs.
    """
    run_quietly(launcher_python("-c", full_import_code()))  # warm-up: page cache, .pyc
    runs = [_profile_once() for _ in range(repeats)]
    modules = {
        name: (
            statistics.median(r[name][0] for r in runs if name in r),
            statistics.median(r[name][1] for r in runs if name in r),
        )
        for name in runs[0]
    }
    per_package: dict[str, float] = defaultdict(float)
    for name, (own, _) in modules.items():
        per_package[package_of(name)] += own
    total = sum(own for own, _ in modules.values())
    return {
        "runs": repeats,
        "modules": len(modules),
        "total_ms": round(total / 1000, 1),
        "by_cumulative": _ranked(modules, 1, top),
        "by_self": _ranked(modules, 0, top),
        "by_package": sorted(
            ([p, round(us / 1000, 1)] for p, us in per_package.items()), key=lambda item: -item[1]
        )[:top],
    }


def _ranked(modules: dict[str, tuple[float, float]], column: int, top: int) -> list[list]:
    """[module, self ms, cumulative ms] rows, largest `column` first."""
    rows = sorted(modules.items(), key=lambda item: -item[1][column])[:top]
    return [
        [name, round(own / 1000, 2), round(cumulative / 1000, 2)]
        for name, (own, cumulative) in rows
    ]


def run(tmp: Path, small_file: str, repeats: int, python: str | None = None) -> dict[str, Any]:
    """The start-up suite: tool timings and the plugin's import profile."""
    return {
        "repeats": repeats,
        "tools": measure_tools(tmp, small_file, repeats, python),
        "plugin_modules": plugin_modules(),
        "importtime": import_profile(repeats),
    }
