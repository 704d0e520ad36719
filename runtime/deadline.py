"""A bound on how long one CNI call may take, so a stuck call cannot hold its network forever.

A call that hangs -- a kernel that does not answer, a program that waits
for a lock of its own -- holds the network's lock and every later call on
that network would queue behind it.  After `CALL_DEADLINE` seconds the call
is interrupted like any failure (an ADD is undone) and answers code 11, "try
again later"; if even the undoing hangs, the process ends `GRACE` seconds
later and the kernel releases its locks.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from compiler.errors import Code, NetcError

CALL_DEADLINE = 60
GRACE = 15


class Overdue(NetcError):
    """The call ran past its deadline."""

    code = Code.TRY_AGAIN


@contextlib.contextmanager
def deadline(seconds: int = CALL_DEADLINE) -> Iterator[None]:
    """Interrupt the body after `seconds` with `Overdue`; end the process `GRACE` s later."""

    def overdue(_signal: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(GRACE)
        raise Overdue(
            f"the call took more than {seconds} s and was stopped", details="try again later"
        )

    previous = signal.signal(signal.SIGALRM, overdue)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
