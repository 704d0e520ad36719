"""A `--target netc` conflist is a function of what the network means.

The same bytes for any spelling of the source's path, any comments, blank
lines or layout (`netc fmt`); different bytes for a different network.
"""

import hypothesis.strategies as st
from hypothesis import given, settings

from compiler import emit
from compiler.fmt import format_document
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from compiler.syntax import parse
from tests.support import EXAMPLES

PODS = (EXAMPLES / "pods.netdsl").read_text()


def _netc(text: str, name: str = "pods.netdsl") -> str:
    compilation = compile_sources([SourceFile(name, text)])
    assert compilation.ok, compilation.diagnostics
    return "".join(emit.render(emit.conflist(n, "netc")) for n in compilation.networks)


def test_the_spelling_of_the_source_path_does_not_matter():
    spellings = ["pods.netdsl", "./pods.netdsl", "/etc/netc/pods.netdsl", "cluster/../pods.netdsl"]
    assert len({_netc(PODS, name) for name in spellings}) == 1


def test_comments_blank_lines_and_layout_do_not_matter():
    commented = "# the pod network of node 1\n\n" + PODS.replace("{\n", "{  # opens\n\n")
    (document, _) = parse(SourceFile("pods.netdsl", PODS))
    assert _netc(commented) == _netc(PODS)
    assert _netc(format_document(document)) == _netc(PODS)


def test_a_change_of_meaning_changes_the_conflist():
    assert _netc(PODS.replace("mtu 1500", "mtu 1400")) != _netc(PODS)
    assert _netc(PODS.replace("deny 22", "deny 23")) != _netc(PODS)


def test_the_runtime_learns_where_an_operation_comes_from_as_a_statement_path():
    text = _netc(PODS)
    assert '"span": "pods › hostport"' in text
    assert "pods.netdsl" not in text


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 200), st.sampled_from(["\n", "# note\n", "   # indented note\n", "\n\n"])
        ),
        max_size=6,
    )
)
def test_inserted_comment_and_blank_lines_never_change_the_bytes(insertions):
    lines = PODS.splitlines(keepends=True)
    for position, extra in insertions:
        index = min(position, len(lines))
        if index == 0 or lines[index - 1].endswith("\n"):
            lines.insert(index, extra)
    assert _netc("".join(lines)) == _netc(PODS)
