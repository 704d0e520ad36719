"""Templates: shared settings merged into networks with `use`.

    template cluster { hostport { deny 22 }  bandwidth { max ingress 1G } }
    network pods { use cluster; bridge cni0 { masquerade } ... }

Merging happens on the syntax tree, so merged statements keep the spans of
the template lines they came from and diagnostics point there.  The rules:
a setting that may appear once is taken from the network if it has it, else
from the template; repeatable settings (`allow`, `route`, `subnet`, ...)
accumulate, template first; blocks merge recursively, and a statement
without a block (`bridge br-batch`) renames but keeps the template's block.
Templates may use other templates; a cycle is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from compiler.ast import Block, Statement, Text, Value, Word
from compiler.diagnostics import Diagnostic, DiagnosticError, Note
from compiler.schema import RAW, SCHEMA
from compiler.source import Span
from compiler.values import block_name, fail


def collect(statements: Sequence[Statement]) -> tuple[dict[str, Statement], list[Diagnostic]]:
    """Templates by name; a name defined twice is reported."""
    templates: dict[str, Statement] = {}
    diagnostics = []
    for statement in statements:
        try:
            name = block_name(statement)
        except DiagnosticError as error:
            diagnostics.append(error.diagnostic)
            continue
        if name in templates:
            diagnostics.append(
                Diagnostic(
                    "E015",
                    f"template `{name}` is defined twice",
                    statement.values[0].span,
                    expected="one definition per template name",
                    hint="rename one of them",
                    notes=(Note("first defined here", templates[name].span),),
                )
            )
            continue
        templates[name] = statement
    return templates, diagnostics


def expand(
    network: Statement, templates: Mapping[str, Statement]
) -> tuple[tuple[Statement, ...], list[Diagnostic]]:
    """The body of `network` with every template it uses merged in, and the problems.

    An unknown template or a cycle is reported and left out; the rest is
    merged, so the network's own mistakes are still found in the same run.
    """
    problems: list[Diagnostic] = []
    return _expand(_body(network), templates, (), problems), problems


def _expand(
    body: tuple[Statement, ...],
    templates: Mapping[str, Statement],
    chain: tuple[str, ...],
    problems: list[Diagnostic],
) -> tuple[Statement, ...]:
    merged: tuple[Statement, ...] = ()
    for use in (s for s in body if s.keyword == "use"):
        for word in use.values:
            name = _used(word)
            try:
                template = _lookup(word, templates, chain)
            except DiagnosticError as error:
                problems += error.diagnostics
                continue
            merged = merge(
                merged, _expand(_body(template), templates, (*chain, name), problems), "network"
            )
    own = tuple(s for s in body if s.keyword != "use")
    return merge(merged, own, "network")


def _used(value: Value) -> str:
    """The template name a `use` value gives ('' for a list or block)."""
    if isinstance(value, Word):
        return value.text
    return value.value if isinstance(value, Text) else ""


def _lookup(value: Value, templates: Mapping[str, Statement], chain: tuple[str, ...]) -> Statement:
    name = _used(value)
    if name not in templates:
        known = ", ".join(f"`{t}`" for t in sorted(templates)) or "none are defined"
        raise fail(
            "E015",
            f"no template named `{name}`",
            value.span,
            expected=f"a defined template: {known}",
            hint="define it with `template NAME { ... }` in one of the input files",
        )
    if name in chain:
        raise _cycle(chain[chain.index(name) :], templates)
    return templates[name]


def _cycle(members: tuple[str, ...], templates: Mapping[str, Statement]) -> DiagnosticError:
    """One diagnostic per cycle, whichever template or network it is found from.

    The cycle is shown from its smallest name, at the `use` that closes it.
    """
    start = members.index(min(members))
    ordered = members[start:] + members[:start]
    closing = next(
        v
        for s in _body(templates[ordered[-1]])
        if s.keyword == "use"
        for v in s.values
        if _used(v) == ordered[0]
    )
    message = (
        f"template `{ordered[0]}` uses itself"
        if len(ordered) == 1
        else ("templates use each other in a cycle: " + " -> ".join((*ordered, ordered[0])))
    )
    return fail(
        "E015",
        message,
        closing.span,
        expected="templates that form no cycle",
        hint="remove one of the `use` lines of the cycle",
    )


def _body(statement: Statement) -> tuple[Statement, ...]:
    return statement.block.statements if statement.block else ()


def merge(
    base: tuple[Statement, ...], override: tuple[Statement, ...], context: str
) -> tuple[Statement, ...]:
    """`override` laid over `base` following the rules in the module docstring."""
    keywords = dict.fromkeys(s.keyword for s in (*base, *override))
    result: list[Statement] = []
    schema = SCHEMA[context]
    for keyword in keywords:
        ours = [s for s in base if s.keyword == keyword]
        theirs = [s for s in override if s.keyword == keyword]
        spec = schema.get(keyword)
        if spec is None or spec.many or not ours or not theirs:
            result += ours + theirs
        elif spec.block not in (None, RAW) and (block := theirs[0].block or ours[0].block):
            result.append(_merge_blocks(ours[0], theirs[0], spec.block, block.span))
        else:
            result += theirs
    return tuple(result)


def _merge_blocks(base: Statement, override: Statement, context: str, span: Span) -> Statement:
    """One statement from two; either may lack a block (`bridge br-batch` keeps the rest).

    `span` is the merged block's: the override's block, else the base's.
    """
    statements = merge(_body(base), _body(override), context)
    values, commas = (
        (override.values, override.commas) if override.values else (base.values, base.commas)
    )
    return Statement(override.key, values, commas, Block(statements, span), override.span)


def check_cycles(templates: Mapping[str, Statement]) -> list[Diagnostic]:
    """Cycles and unknown names among templates (each found from every template it reaches)."""
    diagnostics: list[Diagnostic] = []
    for name, template in templates.items():
        _expand(_body(template), templates, (name,), diagnostics)
    return diagnostics
