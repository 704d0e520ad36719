"""Running iptables: one `iptables-restore --noflush` transaction per change.

The reference portmap plugin runs ~19 iptables processes per ADD and dumps
the nat table four times; netc writes all of an attachment's NAT state for a
family as one restore transaction, which the kernel applies atomically, and
tests single rules or chains (never the whole table) only on rare paths.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from runtime.programs import ProgramFailed, run

COMMANDS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}


def restore(family: int, table: str, lines: Sequence[str]) -> None:
    """Apply `lines` to `table` in one transaction; `ProgramFailed` when refused."""
    text = "\n".join([f"*{table}", *lines, "COMMIT", ""])
    run(COMMANDS[family][1], "-w", "--noflush", stdin=text.encode())


def has_rule(family: int, table: str, chain: str, rule: str) -> bool:
    """Whether `chain` holds `rule` (iptables -C; a missing chain means no)."""
    try:
        run(COMMANDS[family][0], "-w", "-t", table, "-C", chain, *shlex.split(rule))
    except ProgramFailed:
        return False
    return True


def rule_count(family: int, table: str, chain: str) -> int | None:
    """How many rules `chain` holds, or None when it does not exist."""
    try:
        listing = run(COMMANDS[family][0], "-w", "-t", table, "-S", chain)
    except ProgramFailed:
        return None
    return sum(line.startswith(b"-A ") for line in listing.splitlines())
