"""Where a call's time goes: how long it waited for the kernel's netlink answers and for programs.

A request over netlink is done by the kernel inside send(2) and recv(2), and
iptables-restore does its work in a process of its own, which the call
starts and later waits for (meanwhile it goes on with other operations):
the time spent blocked in those is the part of a call no implementation of
the same operations goes below.  The
plugin logs them beside its own time (bench/attach.py reads that line), so
the benchmarks can put netc's distance to that floor in figures.
"""

from __future__ import annotations

SECONDS = {"netlink": 0.0, "programs": 0.0}
"""Seconds this process spent since `reset`: in netlink send/recv; starting programs and
waiting for them to end."""
LOCK_WAITS: dict[str, float] = {}
"""Seconds this process waited for locks since `reset`, by the kind of lock
(`runtime.files.locked`'s `kind`): a warm server's child reports its call's
(runtime/cni/server.py) for the agent's metrics."""


def reset() -> None:
    """Start counting from zero (a call's process starts; a warm server's child inherits counts)."""
    for key in SECONDS:
        SECONDS[key] = 0.0
    LOCK_WAITS.clear()


def described() -> str:
    """The counts as the plugin's log line carries them, e.g. `netlink 6.1 ms, programs 2.4 ms`."""
    return ", ".join(f"{key} {seconds * 1000:.1f} ms" for key, seconds in SECONDS.items())
