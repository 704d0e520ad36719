"""What a runtime test leaves on the host, found and removed: processes, mounts, cgroups.

Container runtimes write outside any directory a test gives them: storage
drivers mount below their root, runc and podman create cgroup directories,
containerd starts shims that outlive a killed daemon.  Each test therefore
gets its own cgroup parent (`netc-<tag>`) and its own work directory, and
cleans up exactly those -- processes are stopped by PID, and only when they
were started by the test (they sit in its cgroups or name its work directory
on their command line); never by name, since other tests and engineers run
podman and containerd on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH a node's services run with (systemd's default), not the test runner's."""


def in_netns(netns: str) -> list[str]:
    """Command prefix that runs a program in a named network namespace.

    `nsenter --net` rather than `ip netns exec`: the latter remounts /sys,
    which hides the cgroup mounts runc needs.  See the module docstring of
    test_podman for why no private mount namespace is made.
    """
    return ["nsenter", f"--net=/run/netns/{netns}"]


def _unescape(field: str) -> str:
    """A /proc/self/mountinfo path field: spaces and the like come as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mounts_below(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    prefix = str(directory)
    with open("/proc/self/mountinfo") as handle:
        points = [_unescape(line.split()[4]) for line in handle]
    mine = {p for p in points if p == prefix or p.startswith(prefix + "/")}
    return sorted(mine, key=lambda p: (p.count("/"), p), reverse=True)


def unmount_below(directory: Path) -> None:
    """Unmount everything a runtime mounted below `directory` (lazily if busy)."""
    for point in mounts_below(directory):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


class CgroupTree:
    """A test's own cgroup parent, `/netc-<tag>`, in every hierarchy of the host."""

    def __init__(self, tag: str) -> None:
        self.name = f"netc-{tag}"

    @property
    def parent(self) -> str:
        """The value for podman's --cgroup-parent and CRI's cgroup_parent."""
        return "/" + self.name

    def directories(self) -> list[Path]:
        """Our directory in each hierarchy where it exists."""
        roots = [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]
        return [root / self.name for root in roots if (root / self.name).is_dir()]

    def pids(self) -> set[int]:
        """Every process in our cgroups."""
        found = set()
        for top in self.directories():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found |= {int(p) for p in procs.read_text().split()}
        return found

    def remove(self) -> None:
        """Kill what is still inside, then remove our directories, innermost first."""
        for pid in self.pids():
            kill(pid, signal.SIGKILL)
        for top in self.directories():
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    _rmdir(directory)
            _rmdir(top)


def _rmdir(directory: Path) -> None:
    """rmdir a cgroup, retrying while the kernel still counts exiting tasks in it."""
    for _ in range(50):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def kill(pid: int, sig: int) -> None:
    """Send a signal, tolerating a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process the test started: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def children(pid: int) -> list[int]:
    """The PIDs of a process's children, from /proc (no process group guessing)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name in parentheses may hold spaces: the fields follow the last ')'
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def processes_naming(text: str) -> dict[int, str]:
    """Processes whose command line contains `text` (e.g. a test's work directory)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found[int(entry.name)] = command.strip()
    return found
