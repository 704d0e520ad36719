"""Full and read-only disks: the state and the data directory on a small tmpfs.

The tmpfs is mounted in a private mount namespace (held by a sleeping
process of the test, `unshare -m --propagation slave`: the lab's network
namespaces still appear in it), never in the machine's; the plugin runs in
that mount namespace (`nsenter -m`) and the test reads the directories through
/proc/PID/root.  Each case fills the directory's blocks or inodes, or makes
it read-only, after a first pod has set the node up; the ADD must fail with a
clean CNI error (one JSON object, a meaningful code) and leave no trace of
the pod: no reservation, claim, record, temporary, link or rule.  Then the
space comes back and the same ADD succeeds, two DELs succeed, and nothing of
the pod remains.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import calls
from tests.faults.state import assert_attached, assert_clean
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod

IO_FAILURE = 5
FILLER = "filler"
PAGE = 4096


class PrivateMounts:
    """A mount namespace of the test's own, with a small tmpfs over each lab directory."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "slave", "sleep", "infinity"]
        )
        lab.processes.append(self.holder)  # killed with the lab: the mounts go with it
        self.view = Path(f"/proc/{self.holder.pid}/root") / lab.tmp.relative_to("/")
        assert lab.wait_for(self._entered), "the mount namespace did not come up"

    def _entered(self) -> bool:
        return os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")

    def mount(self, directory: str, options: str) -> None:
        """A new tmpfs over the lab's `directory` (before anything is written there)."""
        target = self.lab.tmp / directory
        target.mkdir()
        self._run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target))

    def remount(self, directory: str, options: str) -> None:
        self._run("mount", "-o", f"remount,{options}", str(self.lab.tmp / directory))

    def wrapper(self) -> tuple[str, ...]:
        """What runs the plugin in this mount namespace (inside the node's network namespace)."""
        return ("nsenter", "-t", str(self.holder.pid), "-m", "--")

    def _run(self, *command: str) -> None:
        subprocess.run(
            ["nsenter", "-t", str(self.holder.pid), "-m", "--", *command],
            check=True,
            capture_output=True,
        )


def _fill_blocks(directory: Path, leave: int = 0) -> None:
    """Write into `directory` until its file system is full (less `leave` bytes)."""
    fd = os.open(directory / FILLER, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * PAGE)
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(fd)
    if leave:
        os.truncate(directory / FILLER, max(os.path.getsize(directory / FILLER) - leave, 0))


def _fill_inodes(directory: Path, leave: int = 0) -> None:
    """Create empty files in `directory` until no inode is left (less `leave`)."""
    (directory / FILLER).mkdir()
    created = 0
    try:
        while True:
            (directory / FILLER / str(created)).touch()
            created += 1
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    for n in range(created - leave, created):
        (directory / FILLER / str(n)).unlink()


def _free(directory: Path) -> None:
    subprocess.run(["rm", "-rf", str(directory / FILLER)], check=True)


def _add(lab: Lab, mounts: PrivateMounts, conflist: Path, pod: Pod, command: str = "ADD"):
    config = lab.invocation(pod, ports=("8080:80",), bandwidth="egress=10M").capability_args()
    return calls.call(
        lab,
        calls.request(conflist, config),
        calls.environment(command, pod),
        wrapper=mounts.wrapper(),
    )


def _first_pod(lab: Lab, mounts: PrivateMounts, conflist: Path) -> None:
    """A pod added and deleted: the node is set up (bridge, NAT, markers, locks) first."""
    pod = lab.pod("first")
    assert _add(lab, mounts, conflist, pod).status == 0
    assert _add(lab, mounts, conflist, pod, "DEL").status == 0


Fault = Callable[[PrivateMounts, str], None]


def _full(leave: int) -> Fault:
    def fault(mounts: PrivateMounts, directory: str) -> None:
        _fill_blocks(mounts.view / directory, leave)

    return fault


def _no_inodes(leave: int) -> Fault:
    def fault(mounts: PrivateMounts, directory: str) -> None:
        _fill_inodes(mounts.view / directory, leave)

    return fault


def _read_only(mounts: PrivateMounts, directory: str) -> None:
    mounts.remount(directory, "ro")


def _writable(mounts: PrivateMounts, directory: str) -> None:
    mounts.remount(directory, "rw")
    _free(mounts.view / directory)


FAULTS = {"full": _full(0), "no inode": _no_inodes(0), "read-only": _read_only}
if calls.LONG:
    FAULTS |= {f"full but {n} pages": _full(n * PAGE) for n in (1, 2, 4)}
    FAULTS |= {f"{n} inodes left": _no_inodes(n) for n in (1, 2, 3)}


@pytest.mark.parametrize("directory", ["state", "ipam"], ids=["state-dir", "data-dir"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_add_on_a_full_or_read_only_disk_fails_cleanly_and_leaves_no_trace(
    lab, fault, directory
):
    mounts = PrivateMounts(lab)
    for name in ("state", "ipam"):
        mounts.mount(name, "size=256k,nr_inodes=64")
    conflist = lab.network(networks.FULL)
    _first_pod(lab, mounts, conflist)
    pod = lab.pod("p")
    FAULTS[fault](mounts, directory)
    answer = _add(lab, mounts, conflist, pod)
    code = None
    if answer.status == 0:  # the room left was enough for this ADD
        assert fault.endswith(("pages", "left")), "an ADD succeeded on a disk it cannot write"
    else:
        code = answer.error()["code"]
        assert_clean(lab, [pod], view=mounts.view)  # the filler is none of these
    _writable(mounts, directory)
    answer = _add(lab, mounts, conflist, pod)
    assert answer.status == 0, answer.stdout
    assert_attached(lab, pod, answer.documents()[0], egress=True, view=mounts.view)
    for _ in range(2):
        assert _add(lab, mounts, conflist, pod, "DEL").status == 0
    assert_clean(lab, [pod], view=mounts.view)
    assert code in (None, IO_FAILURE), f"the failed ADD answered code {code}"
