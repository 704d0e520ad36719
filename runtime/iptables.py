"""Running iptables: one `iptables-restore --noflush` transaction per change.

The reference portmap plugin runs ~19 iptables processes per ADD and dumps
the nat table four times; netc writes all of an attachment's NAT state for a
family as one restore transaction, which the kernel applies atomically, and
tests single rules or chains (never the whole table) only on rare paths.
The restore text itself is written by `compiler.planner.iptables`, the same
code `netc plan` prints it with.

Which backend runs: the node's `iptables-restore` (whatever its alternatives
choose), unless a backend was chosen (`use_backend`, from NETC_IPTABLES in
`netc`'s command line).  netc's agent runs the iptables of its image, so it
detects the backend the node's other users (kube-proxy, the kubelet) chose,
the way kube-proxy's iptables-wrapper does (`detect_backend`), and runs that
one's programs by their explicit names -- iptables-nft-restore or
iptables-legacy-restore -- it and its warm server alike.  Two backends on one
node would be two rule sets the kernel both applies, neither seeing the other.
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Collection, Iterable, Sequence

from compiler.datatypes import frozen
from compiler.planner.iptables import Rule, restore_text
from runtime.netlink.nftables import Chain, Tables
from runtime.programs import ProgramFailed, ProgramMissing, Running, find, run, start

TOOLS = {4: "iptables", 6: "ip6tables"}
BACKENDS = ("nft", "legacy")
BACKEND_VARIABLE = "NETC_IPTABLES"
"""The environment variable that chooses the backend of every `netc` command (nft, legacy)."""
XTABLES_WAIT = "10"
"""Seconds iptables waits for the xtables lock (kube-proxy holds it while it syncs)."""


_chosen: list[str] = []
"""The backend chosen by `use_backend` (empty: the node's default programs)."""


def use_backend(backend: str | None) -> None:
    """Run `backend`'s programs by their explicit names from now on (None: the defaults)."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(
            f"{BACKEND_VARIABLE} must be one of {', '.join(BACKENDS)}, not {backend!r}"
        )
    _chosen[:] = [backend] if backend else []


def chosen_backend() -> str | None:
    """The backend `use_backend` chose, or None (the node's `iptables-restore` decides)."""
    return _chosen[0] if _chosen else None


def program(family: int, role: str = "") -> str:
    """The program of a family and role ("", "restore", "save") for the chosen backend.

    iptables-restore, or iptables-nft-restore once nft is chosen (the names
    Debian and the upstream install give both backends' programs).
    """
    backend = f"-{_chosen[0]}" if _chosen else ""
    return f"{TOOLS[family]}{backend}{'-' + role if role else ''}"


@frozen
class Detected:
    """A backend detected on the node, with what decided it."""

    backend: str
    rules: dict[str, int]
    """How many rules each backend's tables hold, both families together."""

    def describe(self) -> str:
        """For the agent's log: the backend and the counts it was chosen by."""
        counts = ", ".join(f"{count} in {name}" for name, count in self.rules.items())
        return f"iptables backend {self.backend} ({counts} rules)"


def detect_backend() -> Detected:
    """The backend the node's other users chose: the one whose tables hold more rules.

    As kube-proxy's iptables-wrapper decides: each backend's `-save` of both
    families, its rules counted (lines starting with "-"); a tie -- a node
    nobody has written rules on yet -- goes to nft, the default of current
    distributions.  A backend whose programs are missing or fail counts 0.
    """
    rules = {
        backend: sum(_saved_rules(f"{TOOLS[family]}-{backend}-save") for family in TOOLS)
        for backend in BACKENDS
    }
    return Detected("legacy" if rules["legacy"] > rules["nft"] else "nft", rules)


def _saved_rules(save: str) -> int:
    try:
        saved = run(save)
    except (ProgramFailed, ProgramMissing):
        return 0
    return sum(line.startswith(b"-") for line in saved.splitlines())


def restore(family: int, table: str, lines: Sequence[str]) -> None:
    """Apply `lines` to `table` in one transaction; `ProgramFailed` when refused."""
    start_restore(family, table, lines).wait()


def start_restore(family: int, table: str, lines: Sequence[str]) -> Running:
    """`restore`, started: the transaction is applied (or refused) by the time it is waited for."""
    return start(
        program(family, "restore"),
        "-w",
        XTABLES_WAIT,
        "--noflush",
        stdin=restore_text(table, lines).encode(),
    )


def rule_count(family: int, table: str, chain: str) -> int | None:
    """How many rules `chain` holds, or None when it does not exist."""
    return ListedChains(family, table).rule_count(chain)


class LiveTables:
    """The node's tables as `compiler.planner.iptables.Live` asks about them (one process each)."""

    def chain_exists(self, family: int, table: str, chain: str) -> bool:
        """Whether a user chain exists."""
        return rule_count(family, table, chain) is not None

    def has_rule(self, family: int, table: str, chain: str, arguments: Rule) -> bool:
        """Whether `chain` holds the rule (iptables -C; a missing chain means no)."""
        try:
            run(program(family), "-w", XTABLES_WAIT, "-t", table, "-C", chain, *arguments)
        except ProgramFailed:
            return False
        return True


LIVE = LiveTables()


class ListedChains:
    """A table's chains, each listed once (`iptables -S CHAIN`), asked as `LiveTables` is.

    A rule the chain's listing shows is there; one it does not show is
    asked for with `iptables -C` all the same, so a rule iptables prints
    otherwise than netc wrote it is never taken for missing.  Selectors
    are compared in one order (iptables prints `-d` before `-i`, whatever
    the order they were given in).  A chain in place costs one process,
    where asking rule by rule costs one per rule; the whole table is never
    listed (kube-proxy's may hold thousands of rules).
    """

    def __init__(self, family: int, table: str) -> None:
        self.family, self.table = family, table
        self._listed: dict[str, list[tuple[str, ...]] | None] = {}

    def rules(self, chain: str) -> list[tuple[str, ...]] | None:
        """The rules of `chain` as `canonical` words, or None when it does not exist."""
        if chain not in self._listed:
            try:
                listing = run(
                    program(self.family), "-w", XTABLES_WAIT, "-t", self.table, "-S", chain
                )
            except ProgramFailed:
                self._listed[chain] = None
            else:
                self._listed[chain] = [
                    canonical(shlex.split(text))
                    for text in listing.decode(errors="replace").splitlines()
                    if text.startswith("-A ")
                ]
        return self._listed[chain]

    def chain_exists(self, family: int, table: str, chain: str) -> bool:
        """Whether a user chain exists."""
        return self.rules(chain) is not None

    def has_rule(self, family: int, table: str, chain: str, arguments: Rule) -> bool:
        """Whether `chain` holds the rule: in its listing, or else as `iptables -C` finds."""
        shown = canonical(("-A", chain, *arguments)) in (self.rules(chain) or ())
        return shown or LIVE.has_rule(family, table, chain, arguments)

    def rule_count(self, chain: str) -> int | None:
        """How many rules `chain` holds, or None when it does not exist."""
        listed = self.rules(chain)
        return None if listed is None else len(listed)


SELECTORS = ("-s", "-d", "-i", "-o", "-p")
"""The options iptables prints first, in this order, wherever a rule gave them."""


def canonical(words: Sequence[str]) -> tuple[str, ...]:
    """A rule's words with its plain selectors first, in iptables' order (see `ListedChains`).

    A rule with a negation (`!`) is left as it is: it is then compared as
    written, and at worst asked for with `iptables -C`.
    """
    if "!" in words:
        return tuple(words)
    head, rest = list(words[:2]), list(words[2:])
    found: dict[str, str] = {}
    others: list[str] = []
    position = 0
    while position < len(rest):
        word = rest[position]
        if word in SELECTORS and position + 1 < len(rest) and word not in found:
            found[word] = rest[position + 1]
            position += 2
        else:
            others.append(word)
            position += 1
    selectors = [w for option in SELECTORS if option in found for w in (option, found[option])]
    return (*head, *selectors, *others)


def chains(
    family: int, table: str, names: Iterable[str], counted: Collection[str], holders: Iterable[str]
) -> dict[str, Chain | None]:
    """Each named chain's rule count (those in `counted`) and the rules of `holders` jumping to it.

    None: no such chain.  The shape of a network's NAT, which a pod's ADD
    checks before it trusts it: iptables-nft keeps its tables in nf_tables,
    asked over netlink with no process (`Tables.shape`); iptables-legacy is
    asked with one `iptables-save`.
    """
    if uses_nf_tables():
        return _kept_tables().shape(family, table, names, counted, holders)
    saved = run(program(family, "save"), "-t", table).decode(errors="replace")
    return _saved_chains(saved, names, counted, holders)


def remove_chain(family: int, table: str, chain: str, holder: str) -> bool:
    """Delete an iptables-nft chain and `holder`'s jumps to it over netlink (`Tables.remove_chain`).

    False when the chain was not there.
    """
    return _kept_tables().remove_chain(family, table, chain, holder)


_kept: list[tuple[tuple[int, int], Tables]] = []
"""The netfilter socket `_kept_tables` keeps, with the process and namespace it is for."""


def _kept_tables() -> Tables:
    """A netfilter socket for this process in this network namespace, kept until it ends.

    Releasing one waits, holding the lock every commit of the namespace
    needs, while nf_tables has deletions to free, anywhere on the machine: a
    pod's call, whose answer waits for its NAT's shape or removal, must not
    wait for another pod's DEL or kube-proxy's sync.  The socket goes with
    the process, after the answer, and serves every call the process makes.
    One is kept: a process asking in another namespace (a test's, the
    bench's) closes the one before, which would otherwise keep its namespace
    alive.  A child of a process that kept one (the warm server's) makes its
    own.
    """
    key = (os.getpid(), os.stat("/proc/thread-self/ns/net").st_ino)
    if _kept and _kept[0][0] == key:
        return _kept[0][1]
    if _kept and _kept[0][0][0] == key[0]:
        _kept[0][1].close()
    _kept[:] = [(key, Tables())]
    return _kept[0][1]


def uses_nf_tables() -> bool:
    """Whether the iptables netc runs is iptables-nft.

    The chosen backend says; else the node's iptables-restore, when it is the
    xtables-nft-multi binary.
    """
    if _chosen:
        return _chosen[0] == "nft"
    return "nft" in os.path.basename(os.path.realpath(find(program(4, "restore"))))


def _saved_chains(
    saved: str, names: Iterable[str], counted: Collection[str], holders: Iterable[str]
) -> dict[str, Chain | None]:
    """The chains' shape read from iptables-save's text of one table (see `chains`)."""
    declared, rules, jumps = set(), dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    sources = set(holders)
    for text in saved.splitlines():
        words = text.split()
        if text.startswith(":") and words[0][1:] in rules:
            declared.add(words[0][1:])
        elif len(words) > 1 and words[0] == "-A":
            if words[1] in rules:
                rules[words[1]] += 1
            if words[1] not in sources:
                continue
            for verb, target in itertools.pairwise(words):
                if verb in ("-j", "-g") and target in jumps:
                    jumps[target] += 1
    return {
        name: Chain(rules[name] if name in counted else None, jumps[name])
        if name in declared
        else None
        for name in rules
    }
