"""What `netc import` tells its user: findings located by file and JSON path.

A conflist has no lines worth pointing at -- runtimes and tools rewrite
them -- but every value has a JSON path, so each finding names the file and
the path (`10-mynet.conflist: $.plugins[0].vlan: warning: ...`).  Three
levels: an *error* means the file could not be imported; a *warning* that
the `.netdsl` builds back to something else (a key dropped, a plugin moved);
a *note* that it builds back to a different spelling of the same thing (a
default written out or left out).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from compiler.datatypes import field, frozen, mutable

Path = tuple[str | int, ...]
"""A JSON path as keys and indices; `()` is the document itself."""

T = TypeVar("T")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_path(path: Path) -> str:
    """`$.plugins[0].ipam.ranges[1][0].rangeStart`; keys that are no identifiers in brackets."""
    parts = ["$"]
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.fullmatch(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


class Level(StrEnum):
    """How much a finding matters: errors stop the import of the file."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@frozen
class Finding:
    """One thing `netc import` could not carry over exactly."""

    file: str
    path: Path | None
    level: Level
    message: str
    also: tuple[Path, ...] = ()
    """Further paths the finding explains (a key written as another key)."""

    def __str__(self) -> str:
        where = f" {format_path(self.path)}:" if self.path is not None else ""
        return f"{self.file}:{where} {self.level}: {self.message}"

    def covers(self, path: Path) -> bool:
        """Whether this finding explains a difference at `path` (it is at or above it)."""
        return any(path[: len(mine)] == mine for mine in self._paths())

    def _paths(self) -> tuple[Path, ...]:
        return self.also if self.path is None else (self.path, *self.also)


@mutable
class Report:
    """The findings of one input file, in the order they were made."""

    file: str
    findings: list[Finding] = field(default_factory=list)

    def error(self, path: Path | None, message: str) -> None:
        """The file cannot be imported."""
        self.findings.append(Finding(self.file, path, Level.ERROR, message))

    def warn(self, path: Path | None, message: str, also: tuple[Path, ...] = ()) -> None:
        """Built back, this value means something else or is gone."""
        self.findings.append(Finding(self.file, path, Level.WARNING, message, also))

    def note(self, path: Path | None, message: str, also: tuple[Path, ...] = ()) -> None:
        """Built back, this value is spelt differently but means the same."""
        self.findings.append(Finding(self.file, path, Level.NOTE, message, also))

    @property
    def failed(self) -> bool:
        """Whether an error was found."""
        return any(f.level is Level.ERROR for f in self.findings)


def show(value: object) -> str:
    """A JSON value as a finding quotes it: compact, cut short when long."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 60 else text[:57] + "..."


class Keys:
    """The keys of one JSON object, taken one by one; those nobody takes are reported.

    Every key of a stock plugin's configuration is either turned into netdsl
    or named in a warning -- nothing is dropped silently.
    """

    def __init__(self, document: Mapping[str, Any], path: Path, report: Report) -> None:
        self.path = path
        self.report = report
        self.left = dict(document)

    def take(self, name: str, kind: type[T], what: str) -> T | None:
        """The value of `name` if it is of `kind` (else reported and None); None when absent."""
        if name not in self.left:
            return None
        value = self.left.pop(name)
        wrong_bool = isinstance(value, bool) and kind is not bool
        if not isinstance(value, kind) or wrong_bool:
            self.report.warn((*self.path, name), f"expected {what}, found {show(value)}: dropped")
            return None
        return value

    def at(self, name: str) -> Path:
        """The path of one of the keys."""
        return (*self.path, name)

    def rest(self, owner: str) -> None:
        """Report every key not taken: netdsl has no place for it."""
        for name, value in self.left.items():
            self.report.warn(
                (*self.path, name),
                f"{owner} has no netdsl equivalent for {show(name)} (= {show(value)}): dropped",
            )
        self.left.clear()
