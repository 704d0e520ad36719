"""Running the few external programs the runtime needs: iptables-restore, conntrack.

`subprocess` is imported only when a program actually runs: most CNI calls
(a pod without host ports, any DEL of such a pod) never need one, and the
import is a noticeable part of a Python plugin's start-up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from compiler.errors import Code, NetcError

SEARCH_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin")
"""Runtimes exec plugins with a reduced PATH; these are searched regardless."""


class ProgramMissing(NetcError):
    """A program the operation needs is not installed."""

    code = Code.OPERATION_FAILED


class ProgramFailed(NetcError):
    """A program exited with an error status."""

    code = Code.OPERATION_FAILED

    def __init__(self, argv: Sequence[str], status: int, stderr: bytes) -> None:
        text = stderr.decode(errors="replace").strip()
        super().__init__(f"{os.path.basename(argv[0])} failed: {text or f'status {status}'}")
        self.status = status


def find(name: str) -> str:
    """The absolute path of a program, looked for in the sbin and bin directories."""
    for directory in (*SEARCH_PATH, *os.environ.get("PATH", "").split(os.pathsep)):
        candidate = os.path.join(directory, name)
        if directory and os.access(candidate, os.X_OK):
            return candidate
    raise ProgramMissing(f"{name} is not installed (searched {':'.join(SEARCH_PATH)})")


def run(name: str, *args: str, stdin: bytes = b"", accept: tuple[int, ...] = (0,)) -> bytes:
    """Run a program to completion; its stdout, or `ProgramFailed` for other statuses."""
    import subprocess

    argv = [find(name), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if done.returncode not in accept:
        raise ProgramFailed(argv, done.returncode, done.stderr)
    return done.stdout
