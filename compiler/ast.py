"""The syntax tree of a `.netdsl` file, free of lark types.

The tree is generic, like the grammar: statements with values and blocks.
Meaning is given later by `compiler.schema` and `compiler.lower`.  Each node
keeps the exact text the user wrote (`Word.text`, `Text.raw`) because
`netc fmt` must print it back unchanged, and a `Span` for diagnostics.
"""

from __future__ import annotations

from compiler.datatypes import frozen
from compiler.source import Span


@frozen
class Word:
    """A bare value: a name, number, address, quantity, port range or keyword."""

    text: str
    span: Span


@frozen
class Text:
    """A quoted string; `value` is decoded, `raw` is what the file says."""

    value: str
    raw: str
    span: Span


@frozen
class ListValue:
    """A `[ ... ]` list (plugin options only)."""

    items: tuple[Value, ...]
    span: Span


@frozen
class Block:
    """A `{ ... }` block of statements."""

    statements: tuple[Statement, ...]
    span: Span


Value = Word | Text | ListValue | Block


@frozen
class Statement:
    """`keyword value, value ... { block }`; `commas[i]` tells whether a comma preceded value i."""

    key: Word | Text
    values: tuple[Value, ...]
    commas: tuple[bool, ...]
    block: Block | None
    span: Span

    @property
    def keyword(self) -> str:
        """The statement's keyword as text, whether written bare or quoted."""
        return self.key.text if isinstance(self.key, Word) else self.key.value


@frozen
class Comment:
    """A `# ...` comment, kept for `netc fmt`."""

    text: str
    span: Span


@frozen
class Document:
    """One parsed file."""

    file: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...]
