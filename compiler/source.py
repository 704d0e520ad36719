"""Source files and spans.

Every AST node, IR object and plan operation carries a `Span` so that a
diagnostic, a refused host port or a line of `netc plan` can point back at
the `.netdsl` text it came from.  Spans are plain data (no lark types).

A span also carries the statement path of `compiler.locate`
(`pods › hostport › deny 22`).  Only the path travels inside a conflist to
the runtime plugin: it names the source of a failure there and, unlike a
line number, does not change when the file is edited elsewhere.
"""

from __future__ import annotations

from compiler.datatypes import frozen


@frozen
class Span:
    """A region of a source file; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    path: str = ""

    def __str__(self) -> str:
        """`file:line:column` where the text is known, else the statement path."""
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.path

    @classmethod
    def at(cls, path: str) -> Span:
        """A span known only by its statement path (as the runtime decodes it)."""
        return cls("", 0, 0, 0, 0, path)

    def to_json(self) -> dict[str, object]:
        """The machine form: file, line, column, end_line, end_column and path."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "path": self.path,
        }

    def cover(self, other: Span) -> Span:
        """The smallest span holding both (in the same file and statement as this one)."""
        start = min((self.line, self.column), (other.line, other.column))
        end = max((self.end_line, self.end_column), (other.end_line, other.end_column))
        return Span(self.file, start[0], start[1], end[0], end[1], self.path)


@frozen
class SourceFile:
    """The text of one input file, kept so diagnostics can quote its lines."""

    name: str
    text: str

    def line(self, number: int) -> str:
        """The text of line `number` (1-based) without its line break, or ''.

        Lines end at a line feed only, as the parser counts them (not at U+2028 or a lone CR).
        """
        lines = self.text.split("\n")
        if 1 <= number <= len(lines):
            return lines[number - 1].removesuffix("\r")
        return ""


MAX_SOURCE_BYTES = 8 * 1024 * 1024
"""Inputs above this size are refused with a diagnostic: no pod network needs it."""
