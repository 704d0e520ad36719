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
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from copy import copy
from functools import cache
from typing import NoReturn

from lark import Lark, Token, Transformer, Tree, UnexpectedCharacters
from lark.exceptions import UnexpectedToken
from lark.lexer import BasicLexer, LexerThread
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.tree import Meta

from compiler.ast import Block, Comment, Document, ListValue, Statement, Text, Value, Word
from compiler.datatypes import frozen
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
        return None, [
            Diagnostic(
                "E005",
                f"file is {len(data)} bytes, more than netc reads ({MAX_SOURCE_BYTES})",
                span,
                expected="a .netdsl file under 8 MiB",
                hint="split the networks over several files",
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [_binary_diagnostic(data, error.start, name)]
    control = _CONTROL.search(text)
    if control:
        return None, [_binary_diagnostic(data, len(text[: control.start()].encode()), name)]
    return SourceFile(name, text), []


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def quotable(data: bytes, name: str) -> SourceFile | None:
    """A file `decode` refused, for quoting its lines in diagnostics (None when too large).

    Bytes that are not UTF-8 and control characters become U+FFFD, so the
    caret of an E004 diagnostic points at the character it names.
    """
    if len(data) > MAX_SOURCE_BYTES:
        return None
    return SourceFile(name, _CONTROL.sub("\ufffd", data.decode("utf-8", errors="replace")))


def _binary_diagnostic(data: bytes, offset: int, name: str) -> Diagnostic:
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode()) + 1
    byte = data[offset]
    if byte < 0x80:
        return Diagnostic(
            "E004",
            f"byte 0x{byte:02x} at offset {offset} is a control character, not text",
            Span(name, line, column, line, column + 1),
            expected="a text file in UTF-8",
            hint="is this a binary file? netc reads .netdsl source files",
        )
    return Diagnostic(
        "E004",
        f"byte 0x{byte:02x} at offset {offset} is not UTF-8 text",
        Span(name, line, column, line, column + 1),
        expected="a text file in UTF-8",
        hint="save the file as UTF-8; netc reads .netdsl source files",
    )


def parse(source: SourceFile) -> tuple[Document | None, list[Diagnostic]]:
    """Parse one file; on syntax errors return None and every error found (up to a limit)."""
    too_deep = _check_depth(source)
    if too_deep:
        return None, [too_deep]
    errors: list[Diagnostic] = []

    def recover(error: UnexpectedToken) -> bool:
        errors.append(_syntax_diagnostic(error, source))
        return len(errors) < MAX_SYNTAX_ERRORS

    comments: list[Comment] = []
    try:
        tree = _parser(comments.append, source.name).parse(source.text, on_error=recover)
    except (UnexpectedCharacters, UnexpectedToken) as error:
        final = _syntax_diagnostic(error, source)
        echo = final.code == "E003" and _unclosed(source) is None
        if not errors or (errors[-1].span != final.span and not echo):
            errors.append(final)
        return None, _first_per_line(errors)
    if errors:
        return None, _first_per_line(errors)
    statements = _ToAst(source.name).transform(tree)
    return Document(source.name, statements, tuple(comments)), []


def _first_per_line(errors: Sequence[Diagnostic]) -> list[Diagnostic]:
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
    """The parser, built once per process.

    lark keeps the analysed grammar in a cache file in the temporary directory,
    keyed by the grammar's hash: analysing it is most of a small `netc check`.
    """
    return Lark.open(
        str(GRAMMAR_PATH),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


@cache
def _lexer() -> BasicLexer:
    """A lexer that keeps comments and blanks, built once (`Lark.lex` builds one per call)."""
    conf = copy(_grammar().lexer_conf)
    conf.ignore = ()
    return BasicLexer(conf)


OnComment = Callable[[Comment], None]
OnError = Callable[[UnexpectedToken], bool]
"""Told each syntax error the parser recovers from; False stops the parse."""


def _parser(on_comment: OnComment, file: str) -> _Parser:
    return _Parser(_grammar(), on_comment, file)


class _Parser:
    """The shared lark grammar fed token by token, so comments can be kept and errors skipped."""

    def __init__(self, lark: Lark, on_comment: OnComment, file: str) -> None:
        self.lark = lark
        self.on_comment = on_comment
        self.file = file

    def parse(self, text: str, on_error: OnError) -> Tree[Token]:
        feeder = _Feeder(self.lark.parse_interactive(text), on_error)
        last = None
        for token in self._significant(text):
            last = token
            feeder.feed(token)
        # lark's InteractiveParser.feed_eof is unannotated; it returns the tree.
        return feeder.parser.feed_eof(last)  # type: ignore[no-untyped-call, no-any-return]

    def _significant(self, text: str) -> Iterator[Token]:
        """Lexed tokens without blanks; comments go to `on_comment` on the way."""
        lexer = LexerThread.from_text(_lexer(), text)
        for token in lexer.lex(None):  # type: ignore[no-untyped-call]  # lark's, unannotated
            if token.type == "COMMENT":
                self.on_comment(Comment(str(token).rstrip(), _span(self.file, token)))
            elif token.type != "WS":
                yield token


OPENERS = {"LBRACE": "RBRACE", "LSQB": "RSQB"}


class _Feeder:
    """Feeds tokens to lark's interactive parser and recovers from errors without echoes.

    Line breaks inside `[ ... ]` and after a comma are dropped, so lists may span
    lines.  After an error the offending token is skipped and further errors
    stay unreported until a token is accepted again.  A skipped `{` or `[` takes
    its closer with it, and an unexpected `}` that closes an open block still
    does: lists it cuts short are closed and a dangling comma gets a stand-in
    value first, so the parser stays in step with the braces of the text.
    """

    def __init__(self, parser: InteractiveParser, on_error: OnError) -> None:
        self.parser = parser
        self.on_error = on_error
        self.open: list[tuple[str, bool]] = []
        """The open `{` and `[`, innermost last, each with True when it was skipped."""
        self.previous: str | None = None
        self.recovering = False

    def feed(self, token: Token) -> None:
        kind = token.type
        inside_list = bool(self.open) and self.open[-1][0] == "LSQB"
        if kind == "_NL" and (inside_list or self.previous == "COMMA"):
            return
        self.previous = kind
        if kind in OPENERS.values() and self.open and self.open[-1][1]:
            self.open.pop()
            return
        try:
            self._accept(token)
        except UnexpectedToken as error:
            if not self.recovering and not self.on_error(error):
                raise
            self.recovering = True
            self._recover(token)

    def _accept(self, token: Token) -> None:
        self.parser.feed_token(token)
        self.recovering = False
        if token.type in OPENERS:
            self.open.append((token.type, False))
        elif token.type in OPENERS.values() and self.open:
            self.open.pop()

    def _recover(self, token: Token) -> None:
        if token.type in OPENERS:
            self.open.append((token.type, True))
        elif token.type == "RBRACE" and ("LBRACE", False) in self.open:
            with suppress(UnexpectedToken):
                self._repair_before(token)
                self._accept(token)

    def _repair_before(self, token: Token) -> None:
        """Make way for a `}` closing an open block: end cut-short lists and dangling commas."""
        while self.open[-1] == ("LSQB", False) and "RSQB" in self._accepts():
            self.parser.feed_token(Token.new_borrow_pos("RSQB", "]", token))
            self.open.pop()
        if "RBRACE" not in self._accepts() and "WORD" in self._accepts():
            self.parser.feed_token(Token.new_borrow_pos("WORD", "_", token))

    def _accepts(self) -> set[str]:
        """The terminals the parser would take next (lark's `accepts` is unannotated)."""
        return self.parser.accepts()  # type: ignore[no-untyped-call, no-any-return]


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
                    "E006",
                    f"blocks and lists are nested more than {MAX_DEPTH} deep",
                    Span(source.name, line, column, line, column + 1),
                    expected=f"at most {MAX_DEPTH} levels of `{{` and `[`",
                    hint="a pod network needs four or five levels; is a `}` or `]` missing?",
                )
        elif token in "}]":
            depth = max(0, depth - 1)
    return None


def _syntax_diagnostic(
    error: UnexpectedCharacters | UnexpectedToken, source: SourceFile
) -> Diagnostic:
    """What the lexer (a character) or the LALR parser (a token) found wrong."""
    line, column = error.line, error.column
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(source, line, column)
    token: Token = error.token
    accepts = error.expected or error.accepts
    expected = _expected(accepts)
    if token.type == "$END":
        return _unexpected_end(source, expected)
    span = Span(source.name, line, column, token.end_line or line, token.end_column or column + 1)
    shown = "a line break" if token.type == "_NL" else f"`{token}`"
    hint = _token_hint(token, source, accepts)
    return Diagnostic("E001", f"unexpected {shown}", span, expected=expected, hint=hint)


def _bad_character(source: SourceFile, line: int, column: int) -> Diagnostic:
    char = source.line(line)[column - 1 : column] or "?"
    span = Span(source.name, line, column, line, column + 1)
    if char == '"':
        return Diagnostic(
            "E002",
            "this string is not closed on its line",
            span,
            expected='a closing `"` before the end of the line',
            hint='strings cannot span lines; escape quotes inside them as \\"',
        )
    shown = f"`{char}`" if char.isprintable() else f"U+{ord(char):04X}"
    hint = "netdsl values are bare words or quoted strings"
    if char == "\r":
        hint = "lines end with a line feed (LF or CRLF); replace this lone carriage return"
    elif char.isspace():
        name = unicodedata.name(char, "space").lower()
        hint = f"this is a {name}, often pasted from a web page; type a plain space instead"
    return Diagnostic(
        "E002",
        f"unexpected character {shown}",
        span,
        expected="a keyword, a value, `{`, `}`, `[`, `]` or `,`",
        hint=hint,
    )


def _unexpected_end(source: SourceFile, expected: str) -> Diagnostic:
    unclosed = _unclosed(source)
    lines = source.text.split("\n")
    end = Span(source.name, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
    if unclosed is None:
        hint = (
            "the `,` at the end expects another value"
            if _after_comma(source.text, len(source.text))
            else None
        )
        return Diagnostic("E003", "unexpected end of file", end, expected=expected, hint=hint)
    opener, closer_line = unclosed
    closer = "}" if opener.char == "{" else "]"
    hint = f"add `{closer}` where the {'block' if closer == '}' else 'list'} should end"
    if closer_line is not None:
        hint = (
            f"the `}}` at line {closer_line} is indented less than line {opener.line}; "
            f"is a `{closer}` missing before it?"
        )
    return Diagnostic(
        "E003",
        f"the `{opener.char}` opened at line {opener.line} is never closed",
        Span(source.name, opener.line, opener.column, opener.line, opener.column + 1),
        expected=f"`{closer}` before the end of the file",
        hint=hint,
    )


@frozen
class _Opener:
    """A `{` or `[` in the source, with the indentation of its line."""

    char: str
    line: int
    column: int
    indent: int


_DELIMITERS = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{}\[\]]')


def _nesting(text: str, stop: int) -> tuple[list[_Opener], list[tuple[_Opener, int]]]:
    """The `{` and `[` open at offset `stop`, and openers that probably lost their closer.

    A `[` is suspect when a `}` cuts it short; a `{` when the `}` that closes it
    starts a line indented less than the line of the `{` (it lines up with an
    outer block).  Suspects come with the line of the closer that gave them away.
    """
    still_open: list[_Opener] = []
    suspects: list[tuple[_Opener, int]] = []
    for match in _DELIMITERS.finditer(text, 0, stop):
        char, offset = match.group(), match.start()
        line_start = text.rfind("\n", 0, offset) + 1
        line = text.count("\n", 0, offset) + 1
        head = text[line_start:offset]
        indent = len(head) - len(head.lstrip())
        if char in "{[":
            still_open.append(_Opener(char, line, len(head) + 1, indent))
        elif char == "}":
            while still_open and still_open[-1].char == "[":
                suspects.append((still_open.pop(), line))
            if still_open:
                opener = still_open.pop()
                if not head.strip() and indent < opener.indent:
                    suspects.append((opener, line))
        elif char == "]" and still_open and still_open[-1].char == "[":
            still_open.pop()
    return still_open, suspects


def _unclosed(source: SourceFile) -> tuple[_Opener, int | None] | None:
    """The opener most likely missing its closer at the end of the file, or None."""
    still_open, suspects = _nesting(source.text, len(source.text))
    if suspects and (still_open or any(o.char == "[" for o, _ in suspects)):
        opener, closer_line = suspects[0]
        return opener, closer_line if opener.char == "{" else None
    return (still_open[-1], None) if still_open else None


def _after_comma(text: str, offset: int) -> bool:
    """Whether the last thing before `offset`, comments aside, is a comma."""
    code = _DELIMITERS.sub(lambda m: "" if m.group().startswith("#") else m.group(), text[:offset])
    return code.rstrip().endswith(",")


def _expected(terminals: set[str]) -> str:
    order = list(TOKEN_NAMES)
    names = [
        TOKEN_NAMES.get(t, t.lower())
        for t in sorted(terminals, key=lambda t: (order.index(t) if t in order else len(order), t))
    ]
    if not names:
        return "something else"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _token_hint(token: Token, source: SourceFile, accepts: set[str]) -> str | None:
    if token.type in ("RBRACE", "RSQB"):
        return _closer_hint(token, source)
    if token.type == "LBRACE":
        return "a block follows a statement's keyword and values on the same line"
    if token.type == "COMMA":
        return "a comma separates two values; is a value missing?"
    if {"COMMA", "RSQB"} <= accepts:
        return "separate the items of a list with commas: [a, b]"
    return None


def _closer_hint(token: Token, source: SourceFile) -> str | None:
    offset = _position(token)[0]
    still_open, _ = _nesting(source.text, offset)
    innermost = still_open[-1].char if still_open else None
    if token.type == "RSQB":
        return None if innermost == "[" else "this `]` has no matching `[`"
    if innermost == "[":
        return (
            f"the `[` opened at line {still_open[-1].line} is not closed; add `]` before this `}}`"
        )
    if innermost is None:
        return "this `}` has no matching `{`; remove it or open a block before it"
    if _after_comma(source.text, offset):
        return "the `,` before it expects another value; remove the comma"
    return None


def _position(token: Token) -> tuple[int, int, int, int, int]:
    """A token's offset, line, column, end line and end column.

    lark's lexer gives every token it makes all five (`new_borrow_pos` copies
    them); only a token made by hand has none.
    """
    offset, line, column = token.start_pos, token.line, token.column
    end_line, end_column = token.end_line, token.end_column
    if offset is None or line is None or column is None or end_line is None or end_column is None:
        raise ValueError(f"the {token.type} token {token!r} has no position")
    return offset, line, column, end_line, end_column


def _span(file: str, node: Token | Tree[Token]) -> Span:
    if isinstance(node, Token):
        return Span(file, *_position(node)[1:])
    meta = node.meta
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


class _ToAst(Transformer[Token, tuple[Statement, ...]]):
    """lark tree to `compiler.ast`; punctuation is dropped, positions become Spans.

    lark calls a method per grammar rule with the rule's children already
    transformed: tokens, and what the methods of the inner rules returned.
    """

    def __init__(self, file: str) -> None:
        super().__init__(visit_tokens=False)
        self.file = file

    def __default__(
        self, data: str, children: Sequence[object], meta: Meta
    ) -> NoReturn:  # pragma: no cover - grammar covers all rules
        raise AssertionError(f"unhandled grammar rule {data}")

    def start(self, children: Sequence[Statement | Token]) -> tuple[Statement, ...]:
        return tuple(c for c in children if isinstance(c, Statement))

    def key(self, children: Sequence[Token]) -> Word | Text:
        (token,) = children
        return self._text(token) if token.type == "STRING" else Word(str(token), self._at(token))

    def word(self, children: Sequence[Token]) -> Word:
        (token,) = children
        return Word(str(token), self._at(token))

    def text(self, children: Sequence[Token]) -> Text:
        (token,) = children
        return self._text(token)

    def _text(self, token: Token) -> Text:
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError:
            value = str(token)[1:-1]
        return Text(value, str(token), self._at(token))

    @staticmethod
    def _values(children: Sequence[Token | Value]) -> tuple[tuple[Value, ...], tuple[bool, ...]]:
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

    def list(self, children: Sequence[Token | Value]) -> ListValue:
        items, _ = self._values(children)
        return ListValue(items, self._at(children[0]).cover(self._at(children[-1])))

    def block(self, children: Sequence[Token | Statement]) -> Block:
        statements = tuple(c for c in children if isinstance(c, Statement))
        return Block(statements, self._at(children[0]).cover(self._at(children[-1])))

    def statement(self, children: Sequence[Token | Value]) -> Statement:
        key, *rest = children
        assert isinstance(key, Word | Text), "the grammar starts a statement with its key"
        block = rest[-1] if rest and isinstance(rest[-1], Block) else None
        values, commas = self._values(rest[:-1] if block else rest)
        last = block or (values[-1] if values else key)
        return Statement(key, values, commas, block, key.span.cover(last.span))

    def _at(self, node: Token | Value | Statement) -> Span:
        return _span(self.file, node) if isinstance(node, Token) else node.span
