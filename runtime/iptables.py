"""Running iptables: one `iptables-restore --noflush` transaction per change.

The reference portmap plugin runs ~19 iptables processes per ADD and dumps
the nat table four times; netc writes all of an attachment's NAT state for a
family as one restore transaction, which the kernel applies atomically, and
tests single rules or chains (never the whole table) only on rare paths.
The restore text itself is written by `compiler.planner.iptables`, the same
code `netc plan` prints it with.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence

from compiler.planner.iptables import Rule, restore_text
from runtime.netlink.nftables import Chain, Tables
from runtime.programs import ProgramFailed, Running, find, run, start

COMMANDS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}
SAVE = {4: "iptables-save", 6: "ip6tables-save"}
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


def chains(family: int, table: str, names: Iterable[str]) -> dict[str, Chain | None]:
    """Each named chain's rule count and the rules jumping to it (None: no such chain).

    The shape of a network's NAT, which a pod's ADD checks before it trusts
    it: iptables-nft keeps its tables in nf_tables, asked over netlink with
    no process; iptables-legacy is asked with one `iptables-save`.
    """
    if uses_nf_tables():
        tables = Tables()
        try:
            return {name: tables.chain(family, table, name) for name in names}
        finally:
            tables.close()
    return _saved_chains(run(SAVE[family], "-t", table).decode(errors="replace"), names)


def uses_nf_tables() -> bool:
    """Whether the node's iptables is iptables-nft (the xtables-nft-multi binary)."""
    return "nft" in os.path.basename(os.path.realpath(find(COMMANDS[4][1])))


def _saved_chains(saved: str, names: Iterable[str]) -> dict[str, Chain | None]:
    """The chains' shape read from iptables-save's text of one table."""
    declared, rules, jumps = set(), dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for text in saved.splitlines():
        words = text.split()
        if text.startswith(":") and words[0][1:] in rules:
            declared.add(words[0][1:])
        elif len(words) > 1 and words[0] == "-A":
            if words[1] in rules:
                rules[words[1]] += 1
            for verb, target in itertools.pairwise(words):
                if verb in ("-j", "-g") and target in jumps:
                    jumps[target] += 1
    return {name: Chain(rules[name], jumps[name]) if name in declared else None
            for name in rules}
