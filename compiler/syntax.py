"""Parsing: `.netdsl` text to a `compiler.ast.Document`, or syntax diagnostics.

lark is used only here.  Its errors speak of terminals (`__ANON_3`, `RBRACE`);
this module turns them into sentences ("expected `}` to close the block opened
at line 3").  Hostile input -- bytes that are not UTF-8, huge files, deep
nesting -- is refused with a diagnostic before lark sees it, so the compiler
never ends in a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache

from lark import Lark, Token, Transformer, Tree, UnexpectedCharacters, UnexpectedInput
from lark.exceptions import UnexpectedToken

from compiler.ast import Block, Comment, Document, ListValue, Statement, Text, Value, Word
from compiler.diagnostics import Diagnostic
from compiler.source import MAX_SOURCE_BYTES, SourceFile, Span
from grammar import GRAMMAR_PATH

MAX_DEPTH = 32
"""Deepest nesting of blocks and lists accepted; real networks use four or five."""

MAX_SYNTAX_ERRORS = 10

TOKEN_NAMES = {
    "WORD": "a word or value",
    "STRING": 'a quoted string such as "info"',
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "SEMICOLON": "`;`",
    "_NL": "the end of the line",
    "$END": "the end of the file",
}


def decode(data: bytes, name: str) -> tuple[SourceFile | None, list[Diagnostic]]:
    """The text of a file, or a diagnostic when it is too large or not UTF-8 text."""
    if len(data) > MAX_SOURCE_BYTES:
        span = Span(name, 1, 1, 1, 1)
        return None, [Diagnostic(
            "E005", f"file is {len(data)} bytes, more than netc reads ({MAX_SOURCE_BYTES})",
            span, expected="a .netdsl file under 8 MiB",
            hint="split the networks over several files")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [_binary_diagnostic(data, error.start, name)]
    control = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if control:
        return None, [_binary_diagnostic(data, len(text[: control.start()].encode()), name)]
    return SourceFile(name, text), []


def _binary_diagnostic(data: bytes, offset: int, name: str) -> Diagnostic:
    before = data[:offset]
    line = before.count(b"\n") + 1
    column = offset - (before.rfind(b"\n") + 1) + 1
    return Diagnostic(
        "E004", f"byte 0x{data[offset]:02x} at offset {offset} is not UTF-8 text",
        Span(name, line, column, line, column + 1),
        expected="a text file in UTF-8",
        hint="is this a binary file? netc reads .netdsl source files")


def parse(source: SourceFile) -> tuple[Document | None, list[Diagnostic]]:
    """Parse one file; on syntax errors return None and every error found (up to a limit)."""
    too_deep = _check_depth(source)
    if too_deep:
        return None, [too_deep]
    errors: list[Diagnostic] = []

    def recover(error: UnexpectedInput) -> bool:
        errors.append(_syntax_diagnostic(error, source))
        return len(errors) < MAX_SYNTAX_ERRORS

    comments: list[Comment] = []
    try:
        tree = _parser(comments.append, source.name).parse(source.text, on_error=recover)
    except UnexpectedInput as error:
        if not errors or errors[-1].span != _syntax_diagnostic(error, source).span:
            errors.append(_syntax_diagnostic(error, source))
        return None, _first_per_line(errors)
    if errors:
        return None, _first_per_line(errors)
    statements = _ToAst(source.name).transform(tree)
    return Document(source.name, statements, tuple(comments)), []


def _first_per_line(errors: list[Diagnostic]) -> list[Diagnostic]:
    """One syntax error per line: the rest are usually echoes of the first."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for error in errors:
        key = (error.span.file, error.span.line) if error.span else ("", 0)
        if key not in seen:
            seen.add(key)
            kept.append(error)
    return kept


@cache
def _grammar() -> Lark:
    return Lark.open(
        str(GRAMMAR_PATH), parser="lalr", lexer="basic", propagate_positions=True,
        maybe_placeholders=False, cache=False)


def _parser(on_comment, file: str) -> _Parser:
    return _Parser(_grammar(), on_comment, file)


class _Parser:
    """The shared lark grammar fed token by token, so comments can be kept and errors skipped."""

    def __init__(self, lark: Lark, on_comment, file: str) -> None:
        self.lark = lark
        self.on_comment = on_comment
        self.file = file

    def parse(self, text: str, on_error) -> Tree:
        parser = self.lark.parse_interactive(text)
        last = None
        for token in _continuation_lines(self._significant(text)):
            last = token
            try:
                parser.feed_token(token)
            except UnexpectedToken as error:
                if not on_error(error):
                    raise
        return parser.feed_eof(last)

    def _significant(self, text: str) -> Iterator[Token]:
        """Lexed tokens without blanks; comments go to `on_comment` on the way."""
        for token in self.lark.lex(text, dont_ignore=True):
            if token.type == "COMMENT":
                self.on_comment(Comment(str(token), _span(self.file, token)))
            elif token.type != "WS":
                yield token


def _continuation_lines(tokens: Iterator[Token]) -> Iterator[Token]:
    """Drop line breaks inside `[ ... ]` and after a comma, so lists may span lines."""
    stack: list[str] = []
    previous = None
    for token in tokens:
        kind = token.type
        if kind in ("LSQB", "LBRACE"):
            stack.append(kind)
        elif kind in ("RSQB", "RBRACE") and stack:
            stack.pop()
        if kind == "_NL" and ((stack and stack[-1] == "LSQB") or previous == "COMMA"):
            continue
        previous = kind
        yield token


def _check_depth(source: SourceFile) -> Diagnostic | None:
    depth = 0
    for match in re.finditer(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{\[]|[}\]]', source.text):
        token = match.group()
        if token in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                line = source.text.count("\n", 0, match.start()) + 1
                column = match.start() - source.text.rfind("\n", 0, match.start())
                return Diagnostic(
                    "E006", f"blocks and lists are nested more than {MAX_DEPTH} deep",
                    Span(source.name, line, column, line, column + 1),
                    expected=f"at most {MAX_DEPTH} levels of `{{` and `[`",
                    hint="a pod network needs four or five levels; is a `}` or `]` missing?")
        elif token in "}]":
            depth = max(0, depth - 1)
    return None


def _syntax_diagnostic(error: UnexpectedInput, source: SourceFile) -> Diagnostic:
    line, column = error.line, error.column
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(source, line, column)
    token = getattr(error, "token", None)
    expected = _expected(getattr(error, "expected", set()) or getattr(error, "accepts", set()))
    if token is None or token.type == "$END":
        return _unexpected_end(source, expected)
    span = Span(source.name, line, column, token.end_line or line, token.end_column or column + 1)
    shown = "a line break" if token.type == "_NL" else f"`{token}`"
    hint = _token_hint(token, source)
    return Diagnostic("E001", f"unexpected {shown}", span, expected=expected, hint=hint)


def _bad_character(source: SourceFile, line: int, column: int) -> Diagnostic:
    char = source.line(line)[column - 1: column] or "?"
    span = Span(source.name, line, column, line, column + 1)
    if char == '"':
        return Diagnostic(
            "E002", "this string is not closed on its line", span,
            expected='a closing `"` before the end of the line',
            hint='strings cannot span lines; escape quotes inside them as \\"')
    return Diagnostic(
        "E002", f"unexpected character `{char}`", span,
        expected="a keyword, a value, `{`, `}`, `[`, `]` or `,`",
        hint="netdsl values are bare words or quoted strings")


def _unexpected_end(source: SourceFile, expected: str) -> Diagnostic:
    opener = _unclosed(source)
    lines = source.text.splitlines() or [""]
    end = Span(source.name, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
    if opener:
        kind, line, column = opener
        closer = "}" if kind == "{" else "]"
        return Diagnostic(
            "E003", f"the `{kind}` opened at line {line} is never closed",
            Span(source.name, line, column, line, column + 1),
            expected=f"`{closer}` before the end of the file",
            hint=f"add `{closer}` where the block should end")
    return Diagnostic("E003", "unexpected end of file", end, expected=expected)


def _unclosed(source: SourceFile) -> tuple[str, int, int] | None:
    stack: list[tuple[str, int, int]] = []
    for match in re.finditer(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{\[}\]]', source.text):
        token = match.group()
        if token in "{[":
            line = source.text.count("\n", 0, match.start()) + 1
            column = match.start() - source.text.rfind("\n", 0, match.start())
            stack.append((token, line, column))
        elif token in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _expected(terminals: set[str]) -> str:
    names = sorted({TOKEN_NAMES.get(t, t.lower()) for t in terminals})
    if not names:
        return "something else"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _token_hint(token: Token, source: SourceFile) -> str | None:
    if token.type == "RBRACE":
        return "this `}` has no matching `{`; remove it or open a block before it"
    if token.type == "LBRACE":
        return "a block follows a statement's keyword and values on the same line"
    if token.type == "COMMA":
        return "a comma separates two values; is a value missing?"
    if token.type == "RSQB":
        return "this `]` has no matching `[`"
    return None


def _span(file: str, node: Token | Tree) -> Span:
    if isinstance(node, Token):
        return Span(file, node.line, node.column, node.end_line, node.end_column)
    meta = node.meta
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


class _ToAst(Transformer):
    """lark tree to `compiler.ast`; punctuation is dropped, positions become Spans."""

    def __init__(self, file: str) -> None:
        super().__init__(visit_tokens=False)
        self.file = file

    def __default__(self, data, children, meta):  # pragma: no cover - grammar covers all rules
        raise AssertionError(f"unhandled grammar rule {data}")

    def start(self, children) -> tuple[Statement, ...]:
        return tuple(c for c in children if isinstance(c, Statement))

    def key(self, children) -> Word | Text:
        (token,) = children
        return self._text(token) if token.type == "STRING" else Word(str(token), self._at(token))

    def word(self, children) -> Word:
        (token,) = children
        return Word(str(token), self._at(token))

    def text(self, children) -> Text:
        (token,) = children
        return self._text(token)

    def _text(self, token: Token) -> Text:
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError:
            value = str(token)[1:-1]
        return Text(value, str(token), self._at(token))

    @staticmethod
    def _values(children) -> tuple[tuple[Value, ...], tuple[bool, ...]]:
        values: list[Value] = []
        commas: list[bool] = []
        comma = False
        for child in children:
            if isinstance(child, Token) and child.type == "COMMA":
                comma = True
            elif isinstance(child, Word | Text | ListValue | Block):
                values.append(child)
                commas.append(comma)
                comma = False
        return tuple(values), tuple(commas)

    def list(self, children) -> ListValue:
        items, _ = self._values(children)
        return ListValue(items, self._at(children[0]).cover(self._at(children[-1])))

    def block(self, children) -> Block:
        statements = tuple(c for c in children if isinstance(c, Statement))
        return Block(statements, self._at(children[0]).cover(self._at(children[-1])))

    def statement(self, children) -> Statement:
        key, *rest = children
        block = rest.pop() if rest and isinstance(rest[-1], Block) else None
        values, commas = self._values(rest)
        last = block or (values[-1] if values else key)
        return Statement(key, values, commas, block, key.span.cover(last.span))

    def _at(self, node: Token | Tree | Word | Text | ListValue | Block) -> Span:
        if isinstance(node, Word | Text | ListValue | Block):
            return node.span
        return _span(self.file, node)
