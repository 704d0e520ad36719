"""iptables rules as data, and the one place that turns them into iptables-restore text.

A rule is a tuple of arguments, as `iptables -A CHAIN ...` would take them:
`("-s", "10.244.1.0/24", "-j", "MASQUERADE")`.  The planner builds rules with
`rule()`, which refuses any argument that could change the meaning of the
restore text (a newline starts a new command, `COMMIT` ends a table, a quote
ends a comment); `restore_lines` checks every argument again when it writes
the text, so a value from a caller -- a hostIP, an interface name in a
comment -- can never reach iptables-restore unvalidated.

`restore_lines` serves the runtime, which pipes the lines into
`iptables-restore --noflush`, and `netc plan`, which prints them: what the
plan shows is what runs.  Some lines depend on what the node already has
(declaring an existing chain under --noflush flushes it; a jump present
already must not be appended twice), so the caller passes a `Live` view; the
plan shows the lines of a node that has nothing yet (`FRESH`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from compiler.errors import Code, NetcError

if TYPE_CHECKING:  # the parameters' module builds on this one's rules
    from compiler.planner.params import IptablesAttachmentParams, IptablesNodeParams

Rule = tuple[str, ...]

_PLAIN = re.compile(r"[A-Za-z0-9_.:/\[\]{},=+@!-]+")
"""Arguments written as they are: options, addresses, ports, chain names, placeholders."""
_QUOTABLE = re.compile(r"[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]+")
"""Arguments written in double quotes (comments): printable ASCII but quotes and backslashes.

(Ranges, not a negated class: that one spans all of Unicode and is slow to compile.)"""
COMMENT_MAX = 255
CHAIN_NAME_MAX = 28


class UnsafeRule(NetcError):
    """A value that cannot be written into an iptables rule as it is."""

    code = Code.BAD_CONFIG


def rule(*arguments: str) -> Rule:
    """A rule made of `arguments`, each checked (`UnsafeRule` when one is not acceptable)."""
    for argument in arguments:
        _token(argument)
    return tuple(arguments)


def comment(text: str) -> Rule:
    """The comment match marking a rule's owner."""
    if len(text) > COMMENT_MAX:
        raise UnsafeRule(f"iptables comment of {len(text)} characters (at most {COMMENT_MAX})")
    return rule("-m", "comment", "--comment", text)


def _token(argument: str) -> str:
    if _PLAIN.fullmatch(argument):
        return argument
    if _QUOTABLE.fullmatch(argument):
        return f'"{argument}"'
    raise UnsafeRule(
        f"{argument!r} cannot be part of an iptables rule",
        details="rules take letters, digits and . : / [ ] { } , = + @ ! - _; "
        "comments any printable ASCII but quotes and backslashes",
    )


def line(verb: str, chain: str, arguments: Sequence[str] = ()) -> str:
    """One restore line, e.g. `-A NETC-PO-... -s 10.0.0.0/8 -j MASQUERADE`."""
    return " ".join([verb, _token(chain), *(_token(a) for a in arguments)])


def declare(chain: str) -> str:
    """Declare (and, under --noflush, flush) a user chain."""
    return f":{_token(chain)} - [0:0]"


class Live(Protocol):
    """What the node's tables already hold, as far as the restore text depends on it."""

    def chain_exists(self, family: int, table: str, chain: str) -> bool:
        """Whether a user chain exists."""
        ...

    def has_rule(self, family: int, table: str, chain: str, arguments: Rule) -> bool:
        """Whether `chain` holds this rule."""
        ...


class _Fresh:
    """A node with no netc chains and no netc rules: what `netc plan` shows."""

    def chain_exists(self, family: int, table: str, chain: str) -> bool:
        return False

    def has_rule(self, family: int, table: str, chain: str, arguments: Rule) -> bool:
        return False


FRESH: Live = _Fresh()


def node_setup(params: IptablesNodeParams, live: Live) -> list[str]:
    """A network's chains (declared with their rules), dispatch chains and entry rules.

    Dispatch chains hold the pods' jumps, so an existing one is left alone;
    entry rules already in place are not added again.  An entry rule marked
    `first` is inserted at the head of its chain (a drop that an earlier
    ACCEPT must not pass over), the others appended.
    """
    family, table = params.family, params.table
    lines = []
    for chain in params.chains:
        lines += [declare(chain.name), *(line("-A", chain.name, r) for r in chain.rules)]
    lines += [declare(d) for d in params.dispatch if not live.chain_exists(family, table, d)]
    lines += [
        line("-I" if j.first else "-A", j.chain, j.rule)
        for j in params.jumps
        if not live.has_rule(family, table, j.chain, j.rule)
    ]
    return lines


def attachment_setup(params: IptablesAttachmentParams, live: Live, *, repeated: bool) -> list[str]:
    """A pod's DNAT chain, declared afresh with its rules, and its jump from the dispatch chain.

    On a first ADD the jump cannot exist yet, so the node is not asked.
    """
    assert params.rules is not None, "a pod's chain is set up only with its rules known"
    chain, dispatch, jump = params.chain, params.dispatch, params.jump
    lines = [declare(chain), *(line("-A", chain, r) for r in params.rules)]
    if not repeated or not live.has_rule(params.family, params.table, dispatch, jump):
        lines.append(line("-A", dispatch, jump))
    return lines


def attachment_teardown(params: IptablesAttachmentParams, live: Live | None = None) -> list[str]:
    """Remove a pod's jump and chain; with `live`, only a jump that is there.

    Without `live` the lines assume the jump exists (one transaction, the
    common case); a caller whose transaction failed asks again with `live`.
    """
    chain, dispatch, jump = params.chain, params.dispatch, params.jump
    present = live is None or live.has_rule(params.family, params.table, dispatch, jump)
    unjump = [line("-D", dispatch, jump)] if present else []
    return [declare(chain), *unjump, f"-X {_token(chain)}"]


def node_teardown(params: IptablesNodeParams, live: Live) -> list[str]:
    """A network's chains and entry rules gone: what `node_setup` wrote, the other way.

    The jumps first (a chain still jumped to cannot be deleted), then every
    chain that is there flushed, then deleted -- the dispatch chains with the
    pods' jumps they may still hold.  Nothing that is not there.
    """
    family, table = params.family, params.table
    present = [name for name in params.chain_names if live.chain_exists(family, table, name)]
    lines = [
        line("-D", j.chain, j.rule)
        for j in params.jumps
        if live.has_rule(family, table, j.chain, j.rule)
    ]
    return [
        *lines,
        *(declare(name) for name in present),
        *(f"-X {_token(name)}" for name in present),
    ]


def restore_text(table: str, lines: Sequence[str]) -> str:
    """The input of iptables-restore for one table."""
    return "\n".join([f"*{_token(table)}", *lines, "COMMIT", ""])
