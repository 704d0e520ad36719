"""Diagnostics as users see them: snapshots of bad inputs, and what every one must show.

Each tests/errors/CASE.netdsl is compiled alone and its rendered diagnostics
are compared with tests/errors/CASE.txt.  Inputs that cannot be committed as
text (binary, huge, absurdly nested) are generated here and snapshotted under
tests/golden/generated/.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.diagnostics import CODES, Diagnostic, render_text
from compiler.pipeline import compile_sources
from compiler.source import MAX_SOURCE_BYTES, SourceFile
from compiler.syntax import MAX_DEPTH, decode, quotable
from runtime.cli import main
from tests.support import leaks_lark_names

ERRORS = Path(__file__).parent.parent / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.netdsl"))


def diagnose(data: bytes, name: str) -> tuple[list[Diagnostic], dict[str, SourceFile]]:
    """What `netc check` finds in a file: its diagnostics and the text to quote."""
    source, problems = decode(data, name)
    if source is None:
        quoted = quotable(data, name)
        return problems, {name: quoted} if quoted else {}
    return list(compile_sources([source]).diagnostics), {name: source}


def snapshot(data: bytes, name: str) -> str:
    """The rendered diagnostics of a bad input (errors, or warnings only for a doubtful one)."""
    diagnostics, sources = diagnose(data, name)
    assert diagnostics, f"{name} is diagnosed with nothing"
    return render_text(diagnostics, sources)


def assert_well_formed(diagnostic: Diagnostic, sources: dict[str, SourceFile]) -> None:
    """Every diagnostic names its place, quotes the line with a caret and says what was expected."""
    assert diagnostic.code in CODES
    assert diagnostic.span is not None and diagnostic.expected
    text = render_text([diagnostic], sources)
    line = sources[diagnostic.span.file].line(diagnostic.span.line)
    assert text.startswith(f"{diagnostic.span}: {diagnostic.severity}[{diagnostic.code}]: ")
    assert re.search(rf"^ {diagnostic.span.line} \| .*$", text, re.MULTILINE)
    assert line.split()[0] in text
    assert re.search(r"^ +\| +\^+$", text, re.MULTILINE)
    assert "   = expected: " in text
    for part in (diagnostic.message, diagnostic.expected, diagnostic.hint):
        assert not leaks_lark_names(part), part


@pytest.mark.parametrize("case", CASES)
def test_diagnostics_match_snapshot(case, golden):
    data = (ERRORS / f"{case}.netdsl").read_bytes()
    golden.check(f"errors/{case}.txt", snapshot(data, f"{case}.netdsl"))


@pytest.mark.parametrize("case", CASES)
def test_every_diagnostic_is_located_and_explained(case):
    diagnostics, sources = diagnose((ERRORS / f"{case}.netdsl").read_bytes(), f"{case}.netdsl")
    assert diagnostics
    for diagnostic in diagnostics:
        assert_well_formed(diagnostic, sources)


def test_every_snapshot_has_its_input():
    assert CASES
    assert sorted(p.stem for p in ERRORS.glob("*.txt")) == CASES


@pytest.mark.parametrize(
    ("case", "least"),
    [
        ("many-semantic-errors", 30),
        ("cluster-several-mistakes", 8),
        ("cluster-etcd-several-mistakes", 11),
    ],
)
def test_all_independent_errors_of_a_file_are_reported(case, least):
    """Lines of these files say `# expect CODE...`: exactly those are reported, in one run.

    Once per bad value (`allow 0, 8080/icmp` is two), and across networks: a
    shared bridge or an overlap is found even when a network has other errors.
    In a cluster file, a bad VNI, a bad node or an unknown template hides
    nothing: not the other nodes' problems, nor the MTU, nor the network's own;
    in an etcd cluster's, nor does a bad endpoint, prefix, lease or file.
    """
    path = ERRORS / f"{case}.netdsl"
    expected = Counter(
        (number, code)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "# expect" in line
        for code in line.split("# expect")[1].split()
    )
    diagnostics, _ = diagnose(path.read_bytes(), path.name)
    assert Counter((d.span.line, d.code) for d in diagnostics) == expected
    assert expected.total() >= least


GENERATED = {
    "not-utf8": b"network pods {\n    bridge caf\xc3\xa9\xff\n}\n",
    "nul-byte": b"network pods {\n    bridge cni0\x00\n}\n",
    "too-large": b"#" * (MAX_SOURCE_BYTES + 1),
    "too-deep": b"network pods {\n    plugin x {\n        a " + b"[" * MAX_DEPTH + b"\n",
}
GENERATED_CODES = {"not-utf8": "E004", "nul-byte": "E004", "too-large": "E005", "too-deep": "E006"}


@pytest.mark.parametrize("case", GENERATED)
def test_hostile_input_is_refused_with_a_diagnostic(case, golden):
    diagnostics, _ = diagnose(GENERATED[case], f"{case}.netdsl")
    assert [d.code for d in diagnostics] == [GENERATED_CODES[case]]
    golden.check(f"golden/generated/{case}.txt", snapshot(GENERATED[case], f"{case}.netdsl"))


@pytest.mark.parametrize("case", ["not-utf8", "nul-byte", "too-deep"])
def test_hostile_input_diagnostics_quote_the_line(case):
    diagnostics, sources = diagnose(GENERATED[case], f"{case}.netdsl")
    assert_well_formed(diagnostics[0], sources)


def test_the_caret_of_a_bad_byte_counts_characters_not_bytes():
    (diagnostic,), _ = diagnose(GENERATED["not-utf8"], "f.netdsl")
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 16)


def test_a_file_of_exactly_the_size_limit_is_read():
    source, problems = decode(b" " * MAX_SOURCE_BYTES, "big.netdsl")
    assert source is not None and not problems


def test_nesting_of_exactly_the_depth_limit_is_parsed():
    nested = "a " + "[" * (MAX_DEPTH - 1) + "{}" + "]" * (MAX_DEPTH - 1) + "\n"
    compilation = compile_sources([SourceFile("deep.netdsl", nested)])
    assert "E006" not in {d.code for d in compilation.diagnostics}


def test_check_json_output(tmp_path):
    path = tmp_path / "bad.netdsl"
    path.write_bytes((ERRORS / "default-above-max.netdsl").read_bytes())
    result = CliRunner().invoke(main, ["check", "--format", "json", str(path)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["format_version"] == "1.0"
    assert (document["valid"], document["error_count"], document["warning_count"]) == (False, 1, 0)
    (diagnostic,) = document["diagnostics"]
    assert (diagnostic["severity"], diagnostic["code"]) == ("error", "E403")
    assert diagnostic["message"].startswith("default ingress 200 Mbit/s is above")
    assert diagnostic["range"] == {
        "filename": str(path),
        "start": {"line": 7, "column": 17},
        "end": {"line": 7, "column": 29},
    }
    assert diagnostic["source_line"] == "        default ingress 200M egress 10M"
    assert diagnostic["notes"][0]["range"]["start"] == {"line": 8, "column": 13}


def test_the_lark_name_check_spots_terminals_but_not_quoted_user_text():
    assert leaks_lark_names("expected RBRACE or __ANON_0")
    assert not leaks_lark_names("unknown keyword `RSQB` at the top of a file")


def test_quoted_lines_are_counted_at_line_feeds_only():
    text = (
        "# a line separator\u2028 in a comment\n"
        "network pods {\n    bridge x:y\n    ipam {\n        subnet 10.0.0.0/24\n    }\n}\n"
    )
    diagnostics, sources = diagnose(text.encode(), "f.netdsl")
    assert [d.code for d in diagnostics] == ["E103"]
    assert " 3 |     bridge x:y\n" in render_text(diagnostics, sources)
