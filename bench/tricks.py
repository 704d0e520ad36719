"""What each of the plugin's start-up tricks saves, against the plain way it replaces.

netc-cni's cold path is a fresh interpreter per call, so the plugin avoids a
few of the standard library's conveniences (docs/architecture.md, "Import
discipline").  A trick stays only while it pays: each is timed here
against the code it replaces, both in a fresh `python -IS` like the
launcher's, round-robin in the same run.  The figures live in
docs/benchmarks.md, not in the modules' comments.
"""

from __future__ import annotations

import re
import subprocess
from functools import partial
from typing import Any

from bench.commands import Case, time_commands
from bench.startup import (
    PROJECT,
    full_import_code,
    launcher_python,
    module_file,
    package_of,
    plugin_modules,
)

_DECORATED = re.compile(r"^@(frozen|mutable)\b", re.MULTILINE)


def plugin_data_types() -> int:
    """How many @frozen / @mutable classes a plugin call may define (its modules, statically)."""
    return sum(
        len(_DECORATED.findall(path.read_text()))
        for path in filter(None, map(module_file, plugin_modules()))
    )


def _classes(count: int) -> str:
    """`count` four-field data types decorated with `frozen`, and one instance of each."""
    return "".join(
        f"@frozen\nclass C{i}:\n    a: int\n    b: str\n    c: tuple = ()\n"
        f"    d: object = None\nC{i}(1, 'x')\n"
        for i in range(count)
    )


def plugin_stdlib() -> list[str]:
    """The standard library's modules the full plugin loads: what every call pays anyway.

    Both sides of a trick import them first, so that a trick is charged only
    what it adds to a plugin call; a module the trick avoids but the plugin
    loads anyway shows up as a trick that saves nothing.
    """
    listing = "import sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    names = subprocess.run(
        launcher_python("-c", full_import_code() + listing),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in names if package_of(name) == "stdlib" and name != "__main__"]


def _code(body: str, baseline: list[str]) -> list[str]:
    """`python -IS -c`, netc's packages importable, `baseline` imported, then `body`."""
    imports = "".join(f"import {name}\n" for name in baseline)
    return launcher_python("-c", f"import sys\nsys.path.insert(0, {PROJECT!r})\n{imports}{body}")


def cases() -> dict[str, tuple[Case, Case]]:
    """Each trick: (the trick's command, the plain command), labelled by where it lives."""
    classes = "{}\n" + _classes(plugin_data_types())
    plain_exit = full_import_code()
    code = partial(_code, baseline=plugin_stdlib())
    return {
        "-S: no site module (launcher)": (
            (launcher_python("-c", "pass"), {}),
            ([launcher_python()[0], "-I", "-c", "pass"], {}),
        ),
        "SHA-256 without hashlib (compiler/digests.py)": (
            (code("import compiler.digests as d\nd.sha256(b'x').hexdigest()"), {}),
            (code("import hashlib\nhashlib.sha256(b'x').hexdigest()"), {}),
        ),
        "data types without dataclasses (compiler/datatypes.py)": (
            (code(classes.format("from compiler.datatypes import frozen")), {}),
            (
                code(
                    classes.format(
                        "import dataclasses\n"
                        "frozen = dataclasses.dataclass(frozen=True, slots=True)"
                    )
                ),
                {},
            ),
        ),
        "_socket, not socket (runtime/netlink/channel.py)": (
            (code("import _socket"), {}),
            (code("import socket"), {}),
        ),
        "posix_spawn and memfds, not subprocess (runtime/programs.py)": (
            (code("import runtime.programs"), {}),
            (code("import subprocess"), {}),
        ),
        "exit without teardown (runtime/cni/plugin.py entry)": (
            (launcher_python("-c", plain_exit + "import os\nos._exit(0)\n"), {}),
            (launcher_python("-c", plain_exit), {}),
        ),
    }


def run(repeats: int) -> dict[str, Any]:
    """Each trick's and its plain way's wall time, and what the trick saves (median ms)."""
    pairs = cases()
    timed = time_commands(
        {
            f"{label}|{side}": case
            for label, both in pairs.items()
            for side, case in zip(("trick", "plain"), both, strict=True)
        },
        repeats,
    )
    rows = {}
    for label in pairs:
        trick, plain = timed[f"{label}|trick"], timed[f"{label}|plain"]
        rows[label] = {
            "trick": trick,
            "plain": plain,
            "saves_ms": round(plain["median_ms"] - trick["median_ms"], 1),
        }
    return {"repeats": repeats, "data_types": plugin_data_types(), "tricks": rows}
