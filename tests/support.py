"""Helpers shared by the compiler and CLI tests: the examples and compiling them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from compiler import ir_codec
from compiler.ir import Network
from compiler.pipeline import Compilation, compile_sources
from compiler.source import SourceFile

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


def without_spans(value: Any) -> Any:
    """An encoded network (or any JSON value) with every "span" key removed."""
    if isinstance(value, dict):
        return {k: without_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [without_spans(v) for v in value]
    return value


def comparable(networks: tuple[Network, ...]) -> list[Any]:
    """Networks as JSON values without spans or source names: equal when they mean the same."""
    return [without_spans(ir_codec.encode(dataclasses.replace(n, sources=())))
            for n in networks]


_LARK_NAMES = re.compile(
    r"__ANON|\b(?:[LR]BRACE|[LR]SQB|_NL|WORD|STRING|COMMA|SEMICOLON)\b|\$END")


def leaks_lark_names(text: str | None) -> bool:
    """Whether a diagnostic's prose names lark terminals (quoted user text aside)."""
    return bool(_LARK_NAMES.search(re.sub(r"`[^`]*`", "", text or "")))
