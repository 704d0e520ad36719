"""Running netc's commands for timing: which executable, how, and how often.

The console scripts are taken from beside this interpreter, never from PATH:
with pyenv or asdf, PATH holds a shell-script shim that adds tens of
milliseconds of its own to every start-up figure.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import summary, timed


def tool(name: str) -> str:
    """A console script of this interpreter's environment (netc, netc-cni)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def run_quietly(command: Sequence[str], **options: Any) -> None:
    """Run a command, output discarded; a failure is an error (a failed run is not a sample)."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   **options)


def time_command(command: Sequence[str], repeats: int, **options: Any) -> dict[str, Any]:
    """Summary of `repeats` runs of a command, after one untimed run that warms the caches.

    The warm-up run fills the page cache and writes any missing `.pyc`, which
    a CI job or a node that has run the plugin before would already have.
    """
    run_quietly(command, **options)
    return summary([timed(lambda: run_quietly(command, **options)) for _ in range(repeats)])
