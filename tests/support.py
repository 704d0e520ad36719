"""Helpers shared by the compiler and CLI tests: the examples and compiling them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from compiler import datatypes, ir_codec
from compiler.ir import Network
from compiler.pipeline import Compilation, compile_sources
from compiler.source import SourceFile, Span

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _example_sets() -> dict[str, tuple[str, ...]]:
    """Each examples/*.netdsl alone, and examples/multi/*.netdsl together as `multi`."""
    sets = {p.stem: (p,) for p in sorted(EXAMPLES.glob("*.netdsl"))}
    sets["multi"] = tuple(sorted((EXAMPLES / "multi").glob("*.netdsl")))
    return {name: tuple(str(p.relative_to(ROOT)) for p in paths) for name, paths in sets.items()}


EXAMPLE_SETS = _example_sets()
"""Example name -> paths relative to the repository root (the names diagnostics show)."""

EXAMPLE_FILES = tuple(sorted({path for paths in EXAMPLE_SETS.values() for path in paths}))


def load(paths: tuple[str, ...]) -> list[SourceFile]:
    """Source files named by their paths relative to the repository root."""
    return [SourceFile(path, (ROOT / path).read_text()) for path in paths]


def compile_example(name: str) -> tuple[Compilation, dict[str, SourceFile]]:
    """An example set compiled, with its sources by name (for rendering diagnostics)."""
    sources = load(EXAMPLE_SETS[name])
    return compile_sources(sources), {s.name: s for s in sources}


def comparable(networks: tuple[Network, ...]) -> list[Any]:
    """Networks as JSON values free of file names and line numbers: equal when they mean
    the same (statement paths included)."""
    return [ir_codec.encode(n) for n in networks]


def portable(value: Any) -> Any:
    """What a network becomes on its way to a node: spans reduced to paths, no source files."""
    if isinstance(value, Span):
        return Span.at(value.path)
    if isinstance(value, tuple):
        return tuple(portable(v) for v in value)
    if datatypes.is_datatype(value) and not isinstance(value, type):
        changes = {f.name: portable(getattr(value, f.name)) for f in datatypes.fields(value)}
        if isinstance(value, Network):
            changes["sources"] = ()
        return datatypes.replace(value, **changes)
    return value


_LARK_NAMES = re.compile(r"__ANON|\b(?:[LR]BRACE|[LR]SQB|_NL|WORD|STRING|COMMA|SEMICOLON)\b|\$END")


def leaks_lark_names(text: str | None) -> bool:
    """Whether a diagnostic's prose names lark terminals (quoted user text aside)."""
    return bool(_LARK_NAMES.search(re.sub(r"`[^`]*`", "", text or "")))


def python_of(version: tuple[int, int]) -> str | None:
    """An interpreter of this Python release on this machine, if it has one.

    Looked up as `pythonX.Y` on PATH, in pyenv's versions ($PYENV_ROOT, else
    ~/.pyenv) and in /usr/bin; checked by asking it, so a name that lies does
    not pass for the release a test needs.
    """
    name = "python{}.{}".format(*version)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(str(path) for path in pyenv.glob(f"versions/{name[6:]}.*/bin/{name}"))
    candidates = [shutil.which(name), *installed, f"/usr/bin/{name}"]
    for candidate in filter(None, candidates):
        if not os.access(candidate, os.X_OK):
            continue
        done = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout.strip() == str(version):
            return candidate
    return None
