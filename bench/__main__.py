"""`python -m bench`: run the suites, print the report, keep the JSON in bench/results/.

Options make a quick run possible (`--pods 0,10 --samples 5`), and `--only`
picks suites; the defaults are the figures docs/benchmarks.md quotes and
take well under ten minutes on a 2-core VM.  Ctrl-C, SIGTERM and SIGHUP all
unwind the same way, once (later signals are ignored), so namespaces and
temp dirs always go.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import attach, build, cluster, load, machine, membership, report, startup, tricks
from bench.implementations import RUNTIME_STATE, VARIANTS
from bench.namespaces import STOPPING

RESULTS = Path(__file__).resolve().parent / "results"
SMALL_FILE = Path(__file__).resolve().parent.parent / "examples" / "pods.netdsl"
RUNTIME_TMPFS = "/dev/shm"
"""A tmpfs every Linux has, for the state a node keeps in /run (bench/implementations.py)."""
SUITES = ("startup", "build", "attach", "cluster", "load", "membership")


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from None
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError("pod counts cannot be negative")
    return counts


def _positive(text: str) -> int:
    """A count of at least 1: a median of nothing is no figure."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _suites(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",")]
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown suites {unknown}; choose from {SUITES}")
    return [suite for suite in SUITES if suite in chosen]


def _variants(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; choose from {VARIANTS}")
    return chosen


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; every default is what the documented run used."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=_suites,
        default=list(SUITES),
        help=f"comma-separated suites to run, of {','.join(SUITES)} (default all)",
    )
    parser.add_argument(
        "--pods",
        type=_counts,
        default=[0, 100, 500],
        help="pods already attached when sampling (default 0,100,500)",
    )
    parser.add_argument(
        "--samples",
        type=_positive,
        default=15,
        help="ADD/DEL samples per implementation and pod count (default 15)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=2 * (os.cpu_count() or 1),
        help="parallel ADDs while attaching background pods (not timed)",
    )
    parser.add_argument(
        "--variants",
        type=_variants,
        default=list(VARIANTS),
        help="netc-cni start-up variants sampled too: py3 (launcher on "
        "--python), warm (that launcher handing calls to netc serve-cni), "
        "agent (the plugin the node agent installs: the shim, cold and "
        "warm); '' for none (default py3,warm,agent)",
    )
    parser.add_argument(
        "--python",
        default="/usr/bin/python3",
        help="interpreter of the variants' launchers (default /usr/bin/python3)",
    )
    parser.add_argument(
        "--nodes",
        type=_counts,
        default=[10, 100, 1000],
        help="cluster sizes of the cluster suite (default 10,100,1000)",
    )
    parser.add_argument(
        "--load-pods",
        type=_positive,
        default=200,
        help="pods the load suite attaches and detaches (default 200)",
    )
    parser.add_argument(
        "--load-callers",
        type=_positive,
        default=20,
        help="concurrent callers of the load suite (default 20)",
    )
    parser.add_argument(
        "--member-nodes",
        type=_counts,
        default=[3, 20],
        help="cluster sizes of the membership suite (default 3,20)",
    )
    parser.add_argument(
        "--watchers",
        type=_positive,
        default=1000,
        help="membership sources following one etcd (default 1000)",
    )
    parser.add_argument(
        "--lines",
        type=_positive,
        default=10_000,
        help="lines of the generated .netdsl file (default 10000)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive,
        default=10,
        help="runs of each command-line timing and import profile (default 10)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="directory for the JSON results (default bench/results)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="print the report of an earlier results file, measure nothing",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    """Unwind as Ctrl-C does, once: later signals would cut the clean-up short."""
    for stopping in STOPPING:
        signal.signal(stopping, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_cleanly() -> None:
    """Route stopping signals to `_interrupt`; SIGINT only if not ignored (background job)."""
    for signum in STOPPING:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupt)


def run_suites(options: argparse.Namespace, tmp: Path, suites: dict[str, Any]) -> None:
    """Each chosen suite in turn, with how long it took, into `suites` as each ends."""
    runners = {
        "startup": lambda: {
            **startup.run(
                tmp, str(SMALL_FILE), options.repeats, options.python if options.variants else None
            ),
            "tricks": tricks.run(3 * options.repeats),
        },
        "build": lambda: build.run(tmp, options.lines, options.repeats),
        "attach": lambda: attach.run(
            tmp,
            options.pods,
            options.samples,
            options.jobs,
            variants=options.variants,
            python=options.python,
        ),
        "cluster": lambda: cluster.run(
            tmp, options.nodes, options.repeats, apply=os.geteuid() == 0
        ),
        "load": lambda: load.run(tmp, options.load_pods, options.load_callers),
        "membership": lambda: membership.run(tmp, options.member_nodes, options.watchers),
    }
    for name in options.only:
        attach.progress(f"suite {name}")
        started = time.monotonic()
        try:
            suites[name] = runners[name]()
        except Exception as error:  # one suite failing must not take the others' figures along
            attach.progress(f"suite {name} failed: {error!r}")
            suites[name] = {"failed": repr(error)}
        suites[name]["elapsed_s"] = round(time.monotonic() - started, 1)


def measure(options: argparse.Namespace, results: dict[str, Any]) -> None:
    """Machine description, suites, and the load at the end (a busy machine shows), into
    `results` as they come: an interrupted run still has the suites it finished."""
    started = time.monotonic()
    results |= {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(options).items()
            if key != "report"
        },
        "machine": machine.describe(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="netc-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="netc-bench-", dir=RUNTIME_TMPFS) as runtime,
    ):
        (Path(tmp) / RUNTIME_STATE).symlink_to(runtime)
        results["suites"] = {}
        try:
            run_suites(options, Path(tmp), results["suites"])
        finally:
            results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            results["elapsed_s"] = round(time.monotonic() - started, 1)


def save(results: dict[str, Any], directory: Path) -> Path:
    """Write the results as `<UTC start time>.json` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{results['started'].replace(':', '-')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Measure (or re-read) results, print the report, save the JSON."""
    options = parse_arguments(argv)
    if options.report:
        sys.stdout.write(report.text(json.loads(options.report.read_text())))
        return 0
    if {"attach", "load", "membership"} & set(options.only) and os.geteuid() != 0:
        print(
            "bench: the attach, load and membership suites need root (network namespaces); "
            "run as root or pass --only startup,build,cluster",
            file=sys.stderr,
        )
        return 2
    if "cluster" in options.only and os.geteuid() != 0:
        print("bench: not root: the cluster suite measures no `netc apply`", file=sys.stderr)
    if options.variants and not os.access(options.python, os.X_OK):
        print(
            f"bench: no {options.python}; measuring netc variants on this interpreter",
            file=sys.stderr,
        )
        options.python = sys.executable
    _stop_cleanly()
    results: dict[str, Any] = {}
    try:
        measure(options, results)
    except KeyboardInterrupt:
        if results.get("suites"):
            results["interrupted"] = True
            print(f"bench: interrupted; finished suites in {save(results, options.out)}")
        raise
    saved = save(results, options.out)  # first: a report that fails loses no measurement
    sys.stdout.write(report.text(results))
    print(f"\nresults: {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
