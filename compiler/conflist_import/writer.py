"""netdsl text from parts: statements as a small tree, plugin options from JSON.

The importer builds `Node`s and prints them; the result is then parsed and
run through `netc fmt` (`compiler.fmt`), so the layout rules live in one
place and an unparsable output would be caught at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from compiler.datatypes import field, mutable

INDENT = "    "
_WORD = re.compile(r'[^\s{}\[\],;"#]+')
"""What the grammar reads as one bare word (`WORD` in grammar/netdsl.lark)."""
_UNPRINTABLE = re.compile("[\x7f\ud800-\udfff]")
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
"""Characters that could end a comment's line, or that no line should hold."""


@mutable
class Node:
    """A statement: its head (keyword and values) and, optionally, a block.

    `body` None prints no block; an empty list prints `{}` (an empty object
    in plugin options).
    """

    head: str
    body: list[Node] | None = field(default=None)
    comment: str | None = None

    def lines(self, depth: int = 0) -> list[str]:
        """The statement as lines of text indented `depth` levels."""
        indent = INDENT * depth
        above = [f"{indent}# {one_line(self.comment)}"] if self.comment else []
        if self.body is None:
            return [*above, indent + self.head]
        if not self.body:
            return [*above, f"{indent}{self.head} {{}}"]
        inner = [line for child in self.body for line in child.lines(depth + 1)]
        return [*above, f"{indent}{self.head} {{", *inner, indent + "}"]


def one_line(text: str) -> str:
    """`text` on one line: control characters and line separators escaped, JSON-style.

    A comment holds text from outside (a file name): a newline in it would
    end the comment and make the rest statements of the generated file.
    """
    return _LINE_BREAKING.sub(lambda match: json.dumps(match.group())[1:-1], text)


def render(nodes: Sequence[Node]) -> str:
    """Top-level statements, a blank line between them."""
    return "\n\n".join("\n".join(node.lines()) for node in nodes) + "\n"


def is_word(text: str) -> bool:
    """Whether the grammar reads `text` as one bare word."""
    return _WORD.fullmatch(text) is not None


def key(name: str) -> str:
    """An option key: bare when the grammar reads it as one word, else quoted."""
    return name if is_word(name) else quoted(name)


def quoted(text: str) -> str:
    """A netdsl string in JSON's escapes.

    DEL (netc refuses control characters in files) and lone surrogates (no
    UTF-8 file can hold them) are escaped as well.
    """
    return _UNPRINTABLE.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False)
    )


def options(values: Mapping[str, Any]) -> list[Node]:
    """A JSON object as plugin option statements (see `compiler.plugin_options`)."""
    return [_option(name, value) for name, value in values.items()]


def _option(name: str, value: Any) -> Node:
    if isinstance(value, dict):
        return Node(key(name), options(value))
    return Node(f"{key(name)} {_value(value)}")


def _value(value: Any) -> str:
    """A JSON value written inline: scalars, lists, and objects inside lists."""
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if not value:
        return "{}"
    return "{ " + "; ".join(f"{key(k)} {_value(v)}" for k, v in value.items()) + " }"
