"""What a run was measured on, stored next to its figures.

Latency figures mean little without the machine: CPU and core count bound
process start-up, the kernel and iptables backend decide what each netlink
or iptables call costs, and the plugin versions say what was compared.  The
load average is recorded because other work on a shared VM shows up as noise.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REFERENCE_PACKAGE = "containernetworking-plugins"
PROJECT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> str | None:
    """A command's output (stdout, else stderr), or None when it cannot run or fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout or done.stderr).strip()


def _output(*command: str) -> str:
    """First line of a command's output, or "unknown"."""
    lines = (_run(*command) or "").splitlines()
    return lines[0] if lines else "unknown"


def _proc_field(path: str, key: str) -> str:
    """A `key: value` field of a /proc file (cpuinfo, meminfo)."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return "unknown"


def _memory() -> str:
    kib = _proc_field("/proc/meminfo", "MemTotal").removesuffix(" kB")
    return f"{int(kib) / 2**20:.1f} GiB" if kib.isdigit() else "unknown"


def _os_release() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "unknown")
    except OSError:
        return "unknown"


def python_version(python: str) -> str:
    """An interpreter's version and path, as a launcher would run it."""
    return f"{_output(python, '--version')} ({python})"


def netc_version() -> str:
    """netc's package version and the git commit measured (with `+dirty` for local edits)."""
    commit = _output("git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD")
    dirty = _run(
        "git", "-C", str(PROJECT), "status", "--porcelain", "--", "compiler", "runtime", "grammar"
    )
    suffix = "+dirty" if dirty else ""
    return f"{metadata.version('netc')} ({commit}{suffix})"


def reference_version() -> str:
    """The distribution package of the stock plugins (Debian builds report no version)."""
    version = _output("dpkg-query", "-W", "-f", "${Version}", REFERENCE_PACKAGE)
    return f"{REFERENCE_PACKAGE} {version}"


def describe() -> dict[str, object]:
    """Everything about this machine that bears on the figures."""
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": _memory(),
        "os": _os_release(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "iptables": _output("iptables", "--version"),
        "netc": netc_version(),
        "reference_plugins": reference_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
