"""Running netc's commands for timing: which executable, how, and how often.

The console scripts are taken from beside this interpreter, never from PATH:
with pyenv or asdf, PATH holds a shell-script shim that adds tens of
milliseconds of its own to every start-up figure.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench.stats import summary, timed


def tool(name: str) -> str:
    """A console script of this interpreter's environment (netc, netc-cni)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def run_quietly(command: Sequence[str], **options: Any) -> None:
    """Run a command, output discarded; a failure is an error (a failed run is not a sample)."""
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options
    )


Case = tuple[Sequence[str], dict[str, Any]]
"""A command line and the `subprocess.run` options it needs (env, input)."""


def time_commands(cases: dict[str, Case], repeats: int) -> dict[str, dict[str, Any]]:
    """Summary per case of `repeats` runs, interleaved, after one untimed run of each.

    Round-robin, so a burst of load on a shared machine hits every case
    alike rather than all the runs of one.  The warm-up run fills the page
    cache and writes any missing `.pyc`, which a CI job or a node that has
    run the plugin before would already have.
    """
    for command, options in cases.values():
        run_quietly(command, **options)
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(repeats):
        for label, (command, options) in cases.items():
            samples[label].append(timed(partial(run_quietly, command, **options)))
    return {label: summary(values) for label, values in samples.items()}
