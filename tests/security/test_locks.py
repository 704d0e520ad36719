"""An unprivileged local user cannot freeze a network's ADD, DEL and GC.

Calls serialise on flock(2) locks in the state and data directories, and
flock works on a descriptor opened read-only: a lock file others may read is
a lock others may hold, for as long as they like.  Here a process running as
uid 65534 tries to take every lock netc uses -- the network's, the IPAM
directory's, the host-port claims' and an attachment's -- on a fresh node
and on one an older netc set up (directories 0755, locks 0644), and a
second pod's ADD must go through.

The state and data directories live in a directory the test makes under
/tmp and opens to everyone (0755), as /run and /var/lib are: pytest's own
temporary directories are private to root, which would hide the attack.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from compiler.planner.names import AttachmentNames
from tests.kernel import networks
from tests.kernel.lab import Lab

NOBODY = 65534


def _locks(base: Path) -> list[Path]:
    return [
        base / "state" / "labnet" / "lock",
        base / "state" / "hostports" / "lock",
        base / "ipam" / "labnet" / "lock",
    ]


def _held_by_nobody(paths: list[Path]) -> list[str]:
    """The locks a process of uid 65534 could take; it holds them until the list is returned.

    The child opens each read-only and flocks it, then reports; the parent
    learns which it took (and, while they are still held, nothing else runs).
    """
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - reports through the pipe
        held = []
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            for path in paths:
                try:
                    fd = os.open(path, os.O_RDONLY)
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append(str(path))
                except OSError:
                    pass
        finally:
            os.write(writer, "\n".join(held).encode())
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        report = pipe.read()
    os.waitpid(child, 0)
    return [line for line in report.splitlines() if line]


def _as_an_older_netc_left_it(base: Path) -> None:
    """Directories 0755 and lock files 0644, as netc made them before this fix."""
    for lock in _locks(base):
        lock.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        lock.parent.chmod(0o755)
        lock.touch(mode=0o644)
        lock.chmod(0o644)


@pytest.mark.parametrize("node", ["fresh", "upgraded"])
def test_a_local_user_cannot_hold_a_netc_lock(lab: Lab, public_dir: Path, node: str):
    if node == "upgraded":
        _as_an_older_netc_left_it(public_dir)
    text = networks.FULL.replace("{state}", str(public_dir / "state")).replace(
        "{data}", str(public_dir / "ipam")
    )
    conflist = lab.network(text)
    first = lab.pod("first")
    lab.add(conflist, first, ports=("8080:80",))
    key = AttachmentNames("labnet", first.container_id, "eth0").key
    locks = [*_locks(public_dir), public_dir / "state" / "labnet" / f"{key}.lock"]
    assert _held_by_nobody(locks) == []
    for lock in locks:
        assert lock.stat().st_mode & 0o777 == 0o600, lock
    lab.add(conflist, lab.pod("second"), ports=("8081:80",))


def test_netcs_directories_are_private(lab: Lab, public_dir: Path):
    text = networks.FULL.replace("{state}", str(public_dir / "state")).replace(
        "{data}", str(public_dir / "ipam")
    )
    lab.add(lab.network(text), lab.pod("first"), ports=("8080:80",))
    for directory in ("state", "state/labnet", "state/hostports", "ipam", "ipam/labnet"):
        assert (public_dir / directory).stat().st_mode & 0o777 == 0o700, directory
