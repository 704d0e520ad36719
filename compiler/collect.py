"""Collecting diagnostics while lowering, so one run reports every problem.

Lowering code raises `DiagnosticError` for the construct it cannot read and
the `Collector` records it and moves on to the next construct; a network
with any error yields no IR, but its other problems are still found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from compiler.ast import Statement
from compiler.diagnostics import Diagnostic, DiagnosticError

T = TypeVar("T")
U = TypeVar("U")
P = ParamSpec("P")


class Collector:
    """Runs lowering steps, keeping the diagnostics of those that fail."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def attempt(self, step: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """`step(*args, **kwargs)`, or None with its diagnostic recorded."""
        try:
            return step(*args, **kwargs)
        except DiagnosticError as error:
            self.diagnostics += error.diagnostics
            return None

    def each(self, step: Callable[[U], T], items: Iterable[U]) -> list[T]:
        """`step` over every item; the failures are recorded and left out."""
        results = (self.attempt(step, item) for item in items)
        return [r for r in results if r is not None]

    def report(self, diagnostic: Diagnostic) -> None:
        """Record a problem found without raising."""
        self.diagnostics.append(diagnostic)

    def raise_recorded(self) -> None:
        """One `DiagnosticError` carrying every problem recorded, if there is any.

        For a construct read in parts that must all be right: each part's
        problem is recorded, and the construct fails once, with all of them.
        """
        if self.diagnostics:
            raise DiagnosticError(*self.diagnostics)


def together(*reads: tuple[Callable[[Any], Any], Any]) -> list[Any]:
    """`step(value)` for each pair; when some fail, one error carrying all their diagnostics.

    For statements made of independent values, such as `range FIRST .. LAST`:
    both bad ends are reported, not only the first.
    """
    collector = Collector()
    results = [collector.attempt(step, value) for step, value in reads]
    collector.raise_recorded()
    return results


def first(statements: tuple[Statement, ...], keyword: str) -> Statement | None:
    """The statement with this keyword (the structure check already refused repeats)."""
    return next((s for s in statements if s.keyword == keyword), None)


def every(statements: tuple[Statement, ...], keyword: str) -> list[Statement]:
    """All statements with this keyword, in order."""
    return [s for s in statements if s.keyword == keyword]


def body(statement: Statement | None) -> tuple[Statement, ...]:
    """The statements of a statement's block (empty without one)."""
    if statement is None or statement.block is None:
        return ()
    return statement.block.statements
