"""`netc fmt`: canonical, idempotent, comment-preserving and meaning-preserving."""

from __future__ import annotations

import itertools

import pytest

from compiler.fmt import format_document
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from compiler.syntax import parse
from tests.conftest import TESTS
from tests.support import EXAMPLE_FILES, EXAMPLE_SETS, ROOT, comparable, load

FMT = TESTS / "golden" / "fmt"
UGLY = sorted(p.name.removesuffix(".in.netdsl") for p in FMT.glob("*.in.netdsl"))
INPUTS = {
    **{path: (ROOT / path).read_text() for path in EXAMPLE_FILES},
    **{f"ugly/{case}": (FMT / f"{case}.in.netdsl").read_text() for case in UGLY},
}


def parsed(text: str):
    document, errors = parse(SourceFile("f.netdsl", text))
    assert document is not None, errors
    return document


def fmt(text: str) -> str:
    return format_document(parsed(text))


def uglify(text: str) -> str:
    """The same file with odd indentation, trailing blanks, extra blank lines and CRLF."""
    indents = itertools.cycle(["", "\t", "  ", " \t ", "          "])
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        blank = "" if "#" in line else "   "
        lines.append(next(indents) + stripped + blank if stripped else "\n\n")
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("name", INPUTS)
def test_fmt_is_idempotent(name):
    once = fmt(INPUTS[name])
    assert fmt(once) == once


@pytest.mark.parametrize("name", INPUTS)
def test_fmt_keeps_every_comment(name):
    before = [c.text for c in parsed(INPUTS[name]).comments]
    after = [c.text for c in parsed(fmt(INPUTS[name])).comments]
    assert before
    assert after == before


def formatted_compilation(paths: tuple[str, ...]):
    sources = load(paths)
    original = compile_sources(sources)
    formatted = compile_sources([SourceFile(s.name, fmt(s.text)) for s in sources])
    return original, formatted


@pytest.mark.parametrize("example", EXAMPLE_SETS)
def test_formatted_examples_compile_to_the_same_networks(example):
    original, formatted = formatted_compilation(EXAMPLE_SETS[example])
    assert original.ok and original.networks
    assert comparable(formatted.networks) == comparable(original.networks)
    assert comparable(formatted.clusters) == comparable(original.clusters)


@pytest.mark.parametrize("case", UGLY)
def test_formatted_ugly_input_compiles_to_the_same_networks(case):
    text = INPUTS[f"ugly/{case}"]
    original = compile_sources([SourceFile("f.netdsl", text)])
    formatted = compile_sources([SourceFile("f.netdsl", fmt(text))])
    assert original.ok and original.networks
    assert fmt(text) != text
    assert comparable(formatted.networks) == comparable(original.networks)
    assert comparable(formatted.clusters) == comparable(original.clusters)


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_examples_are_in_canonical_form(path):
    assert fmt(INPUTS[path]) == INPUTS[path]


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_uglified_examples_format_back_to_the_original(path):
    ugly = uglify(INPUTS[path])
    assert ugly != INPUTS[path]
    assert fmt(ugly) == INPUTS[path]


@pytest.mark.parametrize("case", UGLY)
def test_ugly_input_formats_to_golden(case, golden):
    golden.check(f"golden/fmt/{case}.out.netdsl", fmt(INPUTS[f"ugly/{case}"]))
