"""Options of third-party plugins: netdsl statements read as JSON.

    plugin calico {
        log_level "info"
        ipam { type "host-local"; subnet "usePodCidr" }
        policies [ { Name "EndpointPolicy" } ]
    }

Each statement is a key and one value; strings are quoted, numbers,
`true`, `false` and `null` are bare, `{ ... }` is an object and `[ ... ]` a
list.  Keys the runtime owns (`name`, `cniVersion`, `runtimeConfig`, `args`,
`prevResult`, `cni.dev/...`) and `type` (given by `plugin TYPE`) are refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

from compiler.ast import Block, ListValue, Statement, Text, Value, Word
from compiler.values import fail

RESERVED = ("name", "cniVersion", "runtimeConfig", "args", "prevResult", "type")
CONFLIST_RESERVED = ("name", "cniVersion", "plugins")
"""Keys of a conflist's top level that netc writes itself (`conflist { ... }` refuses them)."""
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def options(block: Block, top: bool = True) -> dict[str, Any]:
    """A block of plugin options as a JSON object; `top` applies the reserved keys."""
    result: dict[str, Any] = {}
    for statement in block.statements:
        key = statement.keyword
        if top and (key in RESERVED or key.startswith("cni.dev/")):
            raise fail(
                "E501",
                f"`{key}` cannot be set in plugin options",
                statement.key.span,
                expected="a key the plugin itself reads",
                hint="the runtime or netc sets this key"
                if key != "type"
                else "the type is the word after `plugin` or `chain`",
            )
        if key in result:
            raise fail(
                "E501",
                f"option `{key}` is given twice",
                statement.key.span,
                expected="each key once",
            )
        result[key] = _statement_value(statement)
    return result


def conflist_options(block: Block) -> dict[str, Any]:
    """The `conflist { ... }` block: keys of the conflist's top level, as JSON."""
    for statement in block.statements:
        if statement.keyword in CONFLIST_RESERVED:
            raise fail(
                "E501",
                f"`{statement.keyword}` cannot be set in conflist options",
                statement.key.span,
                expected="a key such as disableCheck or disableGC",
                hint="netc writes the conflist's name, cniVersion (`cni`) and plugins",
            )
    return options(block, top=False)


def _statement_value(statement: Statement) -> Any:
    if statement.block is not None and not statement.values:
        return options(statement.block, top=False)
    if len(statement.values) != 1 or statement.block is not None:
        raise fail(
            "E501",
            f"option `{statement.keyword}` takes one value",
            statement.span,
            expected='one value: "text", 42, true, { ... } or [ ... ]',
            hint="put several values in a list: [ a, b ]",
        )
    return value(statement.values[0])


def value(item: Value) -> Any:
    """One JSON value from a netdsl value."""
    if isinstance(item, Text):
        return item.value
    if isinstance(item, Block):
        return options(item, top=False)
    if isinstance(item, ListValue):
        return [value(v) for v in item.items]
    return _word(item)


def _word(word: Word) -> Any:
    if word.text in ("true", "false", "null"):
        return json.loads(word.text)
    if _NUMBER.fullmatch(word.text):
        return json.loads(word.text)
    raise fail(
        "E501",
        f"`{word.text}` is not a JSON value",
        word.span,
        expected="a quoted string, a number, true, false, null, { ... } or [ ... ]",
        hint=f'quote text: "{word.text}"',
    )
