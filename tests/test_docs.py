"""The documentation stays true to the code: keywords, codes, quickstart, examples."""

import re

import pytest

from compiler.diagnostics import CODES, render_text
from compiler.pipeline import compile_sources
from compiler.schema import RAW, SCHEMA
from compiler.source import SourceFile
from runtime.cli import COMMANDS
from tests.support import ROOT

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()


def _keywords() -> list[tuple[str, str]]:
    return sorted(
        {
            (context, keyword)
            for context, keywords in SCHEMA.items()
            for keyword in keywords
            if context != RAW
        }
    )


@pytest.mark.parametrize(("context", "keyword"), _keywords())
def test_every_keyword_is_in_the_language_reference(context, keyword):
    assert f"`{keyword}`" in (DOCS / "language.md").read_text(), f"{keyword} in {context}"


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_diagnostic_code_is_explained(code):
    assert f"| {code} |" in (DOCS / "diagnostics.md").read_text()


FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.S | re.M)
TOP_LEVEL = re.compile(r"^(?:network|cluster|template)\s+\S+\s*\{", re.M)


def _fenced_blocks() -> list[tuple[str, list[str], str]]:
    """Every fenced block of docs/: where it starts, the words of its info string, its text."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"docs/{path.name}@{line}", match[1].split(), match[2]))
    return found


NETDSL = [
    (where, info[1:], body) for where, info, body in _fenced_blocks() if info[:1] == ["netdsl"]
]


@pytest.mark.parametrize(("where", "options", "body"), NETDSL, ids=[b[0] for b in NETDSL])
def test_every_netdsl_block_of_the_docs_compiles_or_fails_as_marked(where, options, body):
    """```netdsl: compiles without a diagnostic.  ```netdsl fragment: statements of a
    network, compiled inside one.  ```netdsl expect CODE...: reports exactly those codes."""
    if options[:1] == ["fragment"]:
        body = "network example {\n" + body + "}\n"
    expected = options[1:] if options[:1] == ["expect"] else []
    source = SourceFile(where, body)
    diagnostics = compile_sources([source]).diagnostics
    assert [d.code for d in diagnostics] == expected, render_text(diagnostics, {where: source})


def test_every_block_of_netdsl_in_the_docs_is_marked_netdsl():
    """So that the test above compiles it: a block starting a network, cluster or template."""
    unmarked = [
        where
        for where, info, body in _fenced_blocks()
        if info[:1] != ["netdsl"] and TOP_LEVEL.search(body)
    ]
    assert NETDSL and not unmarked, unmarked


def test_the_diagnostics_page_shows_what_netc_check_prints_for_its_example():
    ((_, _, body),) = [b for b in NETDSL if b[0].startswith("docs/diagnostics.md")]
    source = SourceFile("bad.netdsl", body)
    shown = render_text(compile_sources([source]).diagnostics, {source.name: source})
    assert f"```\n{shown}```" in (DOCS / "diagnostics.md").read_text()


def test_the_readme_example_compiles():
    block = re.search(r"```\n(network pods \{.*?\n\})\n```", README, re.S)
    compilation = compile_sources([SourceFile("README.md", block.group(1))])
    assert compilation.ok, compilation.diagnostics


def test_quickstart_commands_exist_and_ci_runs_the_test_command():
    makefile = (ROOT / "Makefile").read_text()
    for command in ("make demo", "make test"):
        assert command in README
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M)
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_every_command_the_readme_shows_exists():
    blocks = "\n".join(re.findall(r"```\n(.*?)```", README, re.S))
    shown = set(re.findall(r"^netc ([a-z-]+)", blocks, re.M))
    assert shown <= set(COMMANDS), shown - set(COMMANDS)


def test_every_linked_document_exists():
    for link in re.findall(r"\]\((docs/[a-z-]+\.md)", README):
        assert (ROOT / link).exists(), link


def test_every_test_the_differences_page_names_exists():
    """docs/differences.md cites a kernel test for each difference; renaming one breaks it."""
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", (DOCS / "differences.md").read_text()))
    defined = {
        name
        for folder in ("differential", "cluster")
        for path in (ROOT / "tests" / folder).glob("test_*.py")
        for name in re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.M)
    }
    assert named and named <= defined, sorted(named - defined)


def test_every_test_the_security_page_names_exists():
    """docs/security.md names the test performing each attack; each must be defined where it says.

    A test is cited as `tests/PATH.py::test_name`, or as `test_name` alone for
    another test of the file cited last.
    """
    text = (DOCS / "security.md").read_text()
    cited, path = [], None
    for match in re.finditer(r"`(?:(tests/[a-z_/]+\.py)(?:::)?)?(test_[a-z0-9_]+)?`", text):
        path = match.group(1) or path
        if match.group(2):
            assert path is not None, match.group(0)
            cited.append((path, match.group(2)))
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert cited and not missing, missing
