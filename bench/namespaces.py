"""Network namespaces the benchmark makes, and deletes again whatever happens.

Like the kernel tests' lab (tests/kernel/lab.py), everything the plugins do
happens inside throwaway namespaces: a "node" per implementation stands in
for the host, and each pod sandbox is its own namespace.  Deleting a
namespace takes its links, addresses, routes, iptables rules and qdiscs with
it, so closing this object is the whole clean-up; the root namespace is never
touched.  Names carry a random run tag, so concurrent runs (and the tests)
never collide, and leftovers of a killed run are easy to spot.

Hundreds of pods are made and removed through one `ip -batch` process each
way, so setting up 500 pods costs well under a second rather than 1,000
process starts.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
from collections.abc import Iterable, Iterator
from types import TracebackType

NETNS_DIR = "/run/netns"
STOPPING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and termination signals until the block is done; they arrive afterwards.

    Clean-up must not be cut short by a second, impatient Ctrl-C: that would
    leave namespaces behind.  The mask is inherited by the `ip` child too,
    which a terminal's Ctrl-C would otherwise kill mid-batch.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def netns_path(name: str) -> str:
    """Where `ip netns` mounts a namespace: what CNI_NETNS names."""
    return f"{NETNS_DIR}/{name}"


def _ip_batch(lines: Iterable[str], force: bool = False) -> None:
    """Run `ip` commands (one per line) in one process; `force`: keep going, ignore errors."""
    text = "".join(f"{line}\n" for line in lines)
    if text:
        subprocess.run(
            ["ip", *(["-force"] if force else []), "-batch", "-"],
            input=text,
            text=True,
            check=not force,
            capture_output=True,
        )


class Namespaces:
    """Namespaces named `ncbench<hex>-<role>`, deleted together by `close` (or leaving `with`).

    The kernel tests' labs are `nc<hex>-...`; "ncbench" is not hex, so the
    two never share a prefix.
    """

    def __init__(self) -> None:
        self.tag = "ncbench" + secrets.token_hex(3)
        self.names: list[str] = []

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def create(self, roles: Iterable[str]) -> list[str]:
        """New namespaces, `lo` left down as a runtime creates a sandbox."""
        names = [f"{self.tag}-{role}" for role in roles]
        self.names += names  # before creating: a half-done batch is still cleaned up
        _ip_batch(f"netns add {name}" for name in names)
        return names

    def node(self, role: str) -> str:
        """A namespace standing in for a node, with `lo` up as on any host."""
        (name,) = self.create([role])
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def delete(self, names: Iterable[str]) -> None:
        """Delete some of this run's namespaces (absent ones are fine)."""
        doomed = set(names)
        _ip_batch((f"netns del {name}" for name in self.names if name in doomed), force=True)
        self.names = [name for name in self.names if name not in doomed]

    def close(self) -> None:
        """Delete every namespace this run made, and with them all the plugins did there."""
        with signals_held():
            self.delete(list(self.names))
