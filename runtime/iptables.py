"""Running iptables: one `iptables-restore --noflush` transaction per change.

The reference portmap plugin runs ~19 iptables processes per ADD and dumps
the nat table four times; netc writes all of an attachment's NAT state for a
family as one restore transaction, which the kernel applies atomically, and
tests single rules or chains (never the whole table) only on rare paths.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence

SEARCH_PATH = "/usr/sbin:/sbin:/usr/local/sbin:/usr/bin:/bin"
COMMANDS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}


class IptablesMissing(OSError):
    """The iptables binaries are not installed."""


def _binary(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        raise IptablesMissing(f"{name} not found in {SEARCH_PATH}")
    return found


def restore(family: int, table: str, lines: Sequence[str]) -> None:
    """Apply `lines` to `table` in one transaction; raises CalledProcessError on refusal."""
    text = "\n".join([f"*{table}", *lines, "COMMIT", ""])
    command = [_binary(COMMANDS[family][1]), "-w", "--noflush"]
    subprocess.run(command, input=text.encode(), check=True, capture_output=True)


def _iptables(family: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_binary(COMMANDS[family][0]), "-w", *args], capture_output=True,
                          check=False)


def has_rule(family: int, table: str, chain: str, rule: str) -> bool:
    """Whether `chain` holds `rule` (iptables -C; a missing chain means no)."""
    return _iptables(family, "-t", table, "-C", chain, *shlex.split(rule)).returncode == 0


def rule_count(family: int, table: str, chain: str) -> int | None:
    """How many rules `chain` holds, or None when it does not exist."""
    listing = _iptables(family, "-t", table, "-S", chain)
    if listing.returncode != 0:
        return None
    return sum(line.startswith(b"-A ") for line in listing.stdout.splitlines())
