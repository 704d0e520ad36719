"""Statement paths: where a statement sits in its network, in words that survive edits.

A span's file, line and column point a diagnostic or `netc plan` at the
text, but they change when a comment is added or the file is renamed.  What
travels to nodes inside a `--target netc` conflist must not, or every
comment would change the conflist and reload the network on every node.  So
each span also carries a path of statement labels --

    pods › hostport › deny 22

-- the network's name, then each enclosing statement's keyword and values.
The runtime names the source of a failing operation by this path; `netc
plan` prints it beside the line it maps to.  Values inside a statement share
the statement's path.
"""

from __future__ import annotations

from compiler.ast import Block, Document, ListValue, Statement, Text, Value, Word
from compiler.datatypes import replace
from compiler.source import Span

SEPARATOR = " › "
LABEL_MAX = 60
"""Longer labels (long plugin options) are cut: a path names a place, it does not quote it."""


def locate(document: Document) -> Document:
    """The document with every statement's span (and its values') carrying its path."""
    return replace(document, statements=tuple(_statement(s, "") for s in document.statements))


def label(statement: Statement, top_level: bool) -> str:
    """How a statement is named in a path: a network by its name, others by keyword and values.

    Values are joined by spaces whether the source separates them with commas or not.
    """
    values = [_show(v) for v in statement.values if not isinstance(v, Block)]
    if top_level and statement.keyword == "network" and values:
        return values[0]
    shown = " ".join([statement.keyword, *values])  # commas are spelling, not meaning
    return shown if len(shown) <= LABEL_MAX else shown[: LABEL_MAX - 1] + "…"


def _show(value: Value) -> str:
    if isinstance(value, Word):
        return value.text
    if isinstance(value, Text):
        return value.raw
    if isinstance(value, ListValue):
        return "[" + ", ".join(_show(i) for i in value.items) + "]"
    return "{…}"


def _statement(statement: Statement, parent: str) -> Statement:
    own = label(statement, top_level=not parent)
    path = f"{parent}{SEPARATOR}{own}" if parent else own
    block = statement.block
    if block is not None:
        block = Block(tuple(_statement(s, path) for s in block.statements), _at(block.span, path))
    return replace(
        statement,
        key=replace(statement.key, span=_at(statement.key.span, path)),
        values=tuple(_value(v, path) for v in statement.values),
        block=block,
        span=_at(statement.span, path),
    )


def _value(value: Value, path: str) -> Value:
    if isinstance(value, ListValue):
        return ListValue(tuple(_value(i, path) for i in value.items), _at(value.span, path))
    if isinstance(value, Block):
        return Block(tuple(_statement(s, path) for s in value.statements), _at(value.span, path))
    return replace(value, span=_at(value.span, path))


def _at(span: Span, path: str) -> Span:
    return replace(span, path=path)
