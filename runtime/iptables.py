"""Running iptables: one `iptables-restore --noflush` transaction per change.

The reference portmap plugin runs ~19 iptables processes per ADD and dumps
the nat table four times; netc writes all of an attachment's NAT state for a
family as one restore transaction, which the kernel applies atomically, and
tests single rules or chains (never the whole table) only on rare paths.
The restore text itself is written by `compiler.planner.iptables`, the same
code `netc plan` prints it with.
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.planner.iptables import Rule, restore_text
from runtime.programs import ProgramFailed, Running, run, start

COMMANDS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}
XTABLES_WAIT = "10"
"""Seconds iptables waits for the xtables lock (kube-proxy holds it while it syncs)."""


def restore(family: int, table: str, lines: Sequence[str]) -> None:
    """Apply `lines` to `table` in one transaction; `ProgramFailed` when refused."""
    start_restore(family, table, lines).wait()


def start_restore(family: int, table: str, lines: Sequence[str]) -> Running:
    """`restore`, started: the transaction is applied (or refused) by the time it is waited for."""
    return start(COMMANDS[family][1], "-w", XTABLES_WAIT, "--noflush",
                 stdin=restore_text(table, lines).encode())


def rule_count(family: int, table: str, chain: str) -> int | None:
    """How many rules `chain` holds, or None when it does not exist."""
    try:
        listing = run(COMMANDS[family][0], "-w", XTABLES_WAIT, "-t", table, "-S", chain)
    except ProgramFailed:
        return None
    return sum(line.startswith(b"-A ") for line in listing.splitlines())


class LiveTables:
    """The node's tables as `compiler.planner.iptables.Live` asks about them (one process each)."""

    def chain_exists(self, family: int, table: str, chain: str) -> bool:
        """Whether a user chain exists."""
        return rule_count(family, table, chain) is not None

    def has_rule(self, family: int, table: str, chain: str, arguments: Rule) -> bool:
        """Whether `chain` holds the rule (iptables -C; a missing chain means no)."""
        try:
            run(COMMANDS[family][0], "-w", XTABLES_WAIT, "-t", table, "-C", chain, *arguments)
        except ProgramFailed:
            return False
        return True


LIVE = LiveTables()
