"""`netc fmt`: one canonical layout for `.netdsl`, comments kept.

The layout: four spaces per level, one statement per line, `{` on the line
of its statement, values separated by one space (or `, ` where the author
used a comma), at most one blank line in a row and none just inside braces,
a blank line between top-level blocks, short lists on one line.  Comments
stay where they were: on their own line before the statement that follows
them, or after the line they ended; the trailing comments of consecutive
lines start in one column, two spaces after the longest of those lines.  Formatting is idempotent:
`format_document(parse(format_document(d)))` is `format_document(d)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from compiler.ast import Block, Comment, Document, ListValue, Statement, Text, Value, Word

INDENT = "    "
LIST_WIDTH = 80


def format_document(document: Document) -> str:
    """The canonical text of a parsed file."""
    printer = _Printer(document.comments)
    printer.statements(document.statements, 0, top=True)
    printer.leading(None, 0)
    lines = _align_comments(printer.lines, printer.trailing)
    return "\n".join(lines).strip("\n") + "\n" if lines else ""


class _Printer:
    """Accumulates output lines, weaving comments in by source position."""

    def __init__(self, comments: tuple[Comment, ...]) -> None:
        self.lines: list[str] = []
        self.pending = sorted(comments, key=lambda c: (c.span.line, c.span.column))
        self.last_line = 0
        self.trailing: dict[int, int] = {}
        """Output line index -> length of its code, for lines that end in a comment."""

    def statements(self, statements: tuple[Statement, ...], depth: int, top: bool = False) -> None:
        for index, statement in enumerate(statements):
            if top and index > 0 and (statement.block or statements[index - 1].block):
                self.blank()
            following = statements[index + 1] if index + 1 < len(statements) else None
            self.statement(statement, depth, following)

    def statement(self, statement: Statement, depth: int, following: Statement | None) -> None:
        """One statement, with the comments that end its lines.

        A comment ends the last statement of its line: when `following` starts on the
        line this statement ends on, the comment there is the following statement's.
        """
        self.leading(statement.span.line, depth)
        self.separate(statement.span.line)
        header = INDENT * depth + _head(statement, depth)
        if statement.block is None:
            last = statement.span.end_line
            if following is not None and following.span.line == last:
                last -= 1
            self.emit(header, statement.span.line, last)
            return
        self.block(header, statement.block, depth, statement.key.span.line)

    def block(self, header: str, block: Block, depth: int, line: int) -> None:
        if not block.statements and not self._comments_inside(block):
            self.emit(header + " {}", line, block.span.end_line)
            return
        # `ipam { subnet ...  # pod subnet`: the comment ends the subnet, not the header;
        # `bridge cni0 { gateway }  # ...` ends the whole block, written as its header.
        opens_only = block.statements[0].span.line == line if block.statements else False
        self.emit(
            header + " {", line, line - 1 if opens_only and block.span.end_line > line else line
        )
        self.last_line = line
        self.statements(block.statements, depth + 1)
        self.leading(block.span.end_line, depth + 1)
        self.emit(INDENT * depth + "}", block.span.end_line, block.span.end_line)

    def _comments_inside(self, block: Block) -> bool:
        return any(block.span.line <= c.span.line <= block.span.end_line for c in self.pending)

    def leading(self, before: int | None, depth: int) -> None:
        """Comments that sit on their own lines before source line `before` (None: all)."""
        while self.pending and (before is None or self.pending[0].span.line < before):
            comment = self.pending.pop(0)
            self.separate(comment.span.line)
            self.lines.append(INDENT * depth + comment.text)
            self.last_line = comment.span.line

    def separate(self, line: int) -> None:
        """A blank line where the source had one, except just inside an opening brace."""
        if line > self.last_line + 1 and self.lines and not self.lines[-1].endswith("{"):
            self.blank()

    def emit(self, text: str, first: int, last: int) -> None:
        """A line of output with the comments that ended source lines first..last."""
        trailing = [c for c in self.pending if first <= c.span.line <= last]
        for comment in trailing:
            self.pending.remove(comment)
        suffix = "".join("  " + c.text for c in trailing)
        if trailing and "\n" not in text:
            self.trailing[len(self.lines)] = len(text)
        self.lines.append(text + suffix)
        self.last_line = max(last, self.last_line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")


def _align_comments(lines: Sequence[str], trailing: Mapping[int, int]) -> list[str]:
    """Start the trailing comments of each run of consecutive lines in one column."""
    aligned = list(lines)
    runs: list[list[int]] = []
    for index in sorted(trailing):
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    for run in runs:
        column = max(trailing[i] for i in run) + 2
        for i in run:
            code, comment = aligned[i][: trailing[i]], aligned[i][trailing[i] :].lstrip()
            aligned[i] = code.ljust(column) + comment
    return aligned


def _head(statement: Statement, depth: int) -> str:
    parts = [_value(statement.key, depth)]
    for value, comma in zip(statement.values, statement.commas, strict=True):
        if comma:
            parts[-1] += ","
        parts.append(_value(value, depth))
    return " ".join(parts)


def _value(value: Value, depth: int) -> str:
    if isinstance(value, Word):
        return value.text
    if isinstance(value, Text):
        return value.raw
    if isinstance(value, ListValue):
        return _list(value, depth)
    return _inline_block(value, depth)


def _list(value: ListValue, depth: int) -> str:
    items = [_value(v, depth + 1) for v in value.items]
    inline = "[" + ", ".join(items) + "]"
    if "\n" not in inline and len(inline) + len(INDENT) * depth <= LIST_WIDTH:
        return inline
    inner = INDENT * (depth + 1)
    return "[\n" + "".join(f"{inner}{item},\n" for item in items) + INDENT * depth + "]"


def _inline_block(block: Block, depth: int) -> str:
    """A `{ ... }` object inside a list, printed without comments of its own."""
    if not block.statements:
        return "{}"
    inner = "".join(INDENT * (depth + 1) + _nested(s, depth + 1) + "\n" for s in block.statements)
    return "{\n" + inner + INDENT * depth + "}"


def _nested(statement: Statement, depth: int) -> str:
    head = _head(statement, depth)
    if statement.block is None:
        return head
    return head + " " + _inline_block(statement.block, depth)
