"""ADD and DEL latency of a full pod attachment: netc-cni versus the stock plugins.

What is attached is described in bench.implementations.  How it is driven,
and why:

* `runtime.driver` runs each chain as libcni would (prevResult threading,
  result cache, capability args), from this one long-lived process, so no
  interpreter start-up of the harness lands in a sample.
* netc and the reference each get their own throwaway node namespace, with
  background pods attached by themselves: each is measured against the state
  it would really find (its own iptables rules, reservations and qdiscs).
  Every background pod is a full attachment too, with its own host port.
* Samples alternate between the implementations, and the order rotates each
  round, so machine noise (a neighbour's job, a kernel worker) falls on all
  alike.  Every sample is a fresh sandbox and container ID.
* The driver wraps every plugin exec in `nsenter --net` to run it in the
  node's network namespace (`NODE_ENTRY`), a cost real runtimes do not pay
  and not the same for each implementation (`wrapper_costs`); it is
  measured at each pod count and taken out of the "unwrapped" ratio.
  `ip netns exec`, used before, also copies the machine's mount table for
  each exec, which grows with the pods' namespaces mounted in /run/netns.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from bench import implementations as impls
from bench.beside import Beside
from bench.commands import run_quietly
from bench.implementations import (
    AGENT_WARM,
    LISTS,
    NETC,
    NODE_ENTRY,
    REFERENCE,
    Implementation,
    Pod,
)
from bench.machine import python_version
from bench.namespaces import Namespaces
from bench.startup import full_import_code
from bench.stats import summary, timed
from runtime import driver

BACKGROUND_PORTS = 30000
SAMPLE_PORT = 40080
MAX_PODS = 8000
"""Background pods take host ports 30000 up, below the samples' 40080."""
WORK_CALLS = 5
"""Extra netc ADD/DEL calls per pod count whose in-plugin time is read from its log."""
WRAPPER_SAMPLES = 15
FIRST_ADDS = 5
"""Fresh nodes per implementation whose first ADD is timed."""
STEPS = ("add", "del")


def progress(message: str) -> None:
    """A line on stderr, so stdout holds only the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def make_pods(spaces: Namespaces, roles: Sequence[str], ports: Iterable[int]) -> list[Pod]:
    """Fresh sandboxes, each with a runtime-like 64-hex container ID."""
    return [
        Pod(netns, secrets.token_hex(32), port)
        for netns, port in zip(spaces.create(roles), ports, strict=True)
    ]


def in_parallel(action: Callable[[Any], object], items: Sequence[Any], jobs: int) -> None:
    """Run `action` on every item with `jobs` threads; on the first error, cancel the rest.

    Background pods are set-up, not samples, so they may overlap; the pool
    is cancelled explicitly because leaving a `with` only waits for
    queued work, which would attach hundreds more pods after a Ctrl-C.
    """
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(action, item) for item in items]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def attach_background(
    nodes: Sequence[Implementation], spaces: Namespaces, start: int, stop: int, jobs: int
) -> None:
    """Attach pods `start`..`stop`-1 on every node, each pod with its own host port."""
    work = []
    for impl in nodes:
        roles = [f"{impl.name}-b{i}" for i in range(start, stop)]
        pods = make_pods(spaces, roles, range(BACKGROUND_PORTS + start, BACKGROUND_PORTS + stop))
        work += [(impl, pod) for pod in pods]
    in_parallel(lambda item: item[0].add(item[1]), work, jobs)


NO_WORK = "NETC-BENCH-NO-WORK"
"""A CNI command no plugin knows: a warm netc-cni hands it over, and the server's process
answers that it knows no such command (`Implementation.handing_over`)."""


def _probe_once(command: Sequence[str]) -> float:
    return timed(
        partial(run_quietly, command, env={**os.environ, "CNI_COMMAND": "VERSION"}, input=b"{}")
    )


def _handed_over_once(command: Sequence[str]) -> float:
    """A call that does no work, answered by the warm server with an error, as it should."""
    environment = {**os.environ, "CNI_COMMAND": NO_WORK, "CNI_NETNS": "/proc/self/ns/net"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return timed(partial(subprocess.run, command, env=environment, input=b"{}", **quiet))


def wrapper_costs(chosen: Sequence[Implementation], samples: int) -> dict[str, dict[str, float]]:
    """What entering the node adds to one plugin exec of each implementation, bare vs wrapped.

    The wrapper is one more exec, which could cost a plugin that opens many
    files (a Python one imports ~130 modules) otherwise than `true` (`ip
    netns exec`, used before, also made a mount namespace and remounted
    /sys); so each implementation's own probe (`Implementation.probe`) is
    timed both ways.
    Each wrapped run follows its bare run and the cost is the median of those
    paired differences: timed in separate blocks, a difference of two ~100 ms
    medians swings by tens of ms when the load moves (it once showed a false
    30 ms penalty for Python; paired, it is 1-3 ms for every probe).

    A netc-cni that hands calls to a warm server is also called, in the node,
    with a command no plugin knows (`Implementation.handing_over`): that call
    less the wrapped probe's, paired the same way, is the hand-over's cost.
    """
    runs: dict[str, dict[str, list[float]]] = {
        impl.name: {"bare": [], "wrapped": [], "handed_over": []} for impl in chosen
    }
    for _ in range(samples):
        for impl in chosen:
            entry = driver.in_node(impl.node, NODE_ENTRY)
            runs[impl.name]["bare"].append(_probe_once(impl.probe))
            runs[impl.name]["wrapped"].append(_probe_once([*entry, *impl.probe]))
            if impl.handing_over:
                runs[impl.name]["handed_over"].append(
                    _handed_over_once([*entry, *impl.handing_over])
                )
    costs = {}
    for name, times in runs.items():
        costs[name] = {
            "bare_ms": summary(times["bare"])["median_ms"],
            "wrapped_ms": summary(times["wrapped"])["median_ms"],
            "overhead_ms": _paired_ms(times["bare"], times["wrapped"]),
        }
        if times["handed_over"]:
            costs[name]["handover_ms"] = _paired_ms(times["wrapped"], times["handed_over"])
    return costs


def _paired_ms(before: Sequence[float], after: Sequence[float]) -> float:
    """The median of what each run of `after` took more than its run of `before`, in ms."""
    paired = [later - earlier for earlier, later in zip(before, after, strict=True)]
    return round(statistics.median(paired) * 1000, 2)


def measure(
    chosen: Sequence[Implementation], pods: dict[str, list[Pod]], samples: int
) -> dict[str, dict[str, list[float]]]:
    """`samples` rounds of ADD then DEL of a fresh pod per implementation, order rotating."""
    times = {impl.name: {step: [] for step in STEPS} for impl in chosen}
    with Beside() as beside:
        for round_number in range(samples):
            shift = round_number % len(chosen)
            for impl in [*chosen[shift:], *chosen[:shift]]:
                pod = pods[impl.name][round_number]
                times[impl.name]["add"].append(timed(partial(impl.add, pod, beside)))
                impl.settle()
                times[impl.name]["del"].append(timed(partial(impl.delete, pod)))
                impl.settle()
    return times


def compare(
    chosen: Sequence[Implementation],
    times: dict[str, dict[str, list[float]]],
    costs: dict[str, dict[str, float]],
) -> dict[str, dict[str, Any]]:
    """Summaries per implementation and step, with ratios to the reference.

    "unwrapped" takes each chain's wrapper cost (its plugin execs
    times its per-exec cost) out of both medians first, since real runtimes
    exec plugins directly.
    """
    figures = {
        impl.name: {step: summary(times[impl.name][step]) for step in STEPS} for impl in chosen
    }

    def unwrapped(impl: Implementation, step: str) -> float:
        """The median without the wrapper: its own plugins' cost, and on DEL the
        loopback's (a Go binary, as the reference's plugins are); an ADD runs the loopback
        beside its own list (`Implementation.add`), off the path the median measures."""
        own = impl.plugin_execs - impl.loopback_execs
        loopback = impl.loopback_execs if step == "del" else 0
        return (
            figures[impl.name][step]["median_ms"]
            - own * costs[impl.name]["overhead_ms"]
            - loopback * costs[REFERENCE]["overhead_ms"]
        )

    reference = next(impl for impl in chosen if impl.name == REFERENCE)
    for impl in chosen:
        figures[impl.name]["ratio"] = {
            step: round(
                figures[impl.name][step]["median_ms"] / figures[REFERENCE][step]["median_ms"], 2
            )
            for step in STEPS
        }
        figures[impl.name]["ratio_unwrapped"] = {
            step: round(unwrapped(impl, step) / unwrapped(reference, step), 2) for step in STEPS
        }
    return figures


def measure_at(
    chosen: Sequence[Implementation], spaces: Namespaces, count: int, samples: int
) -> dict[str, Any]:
    """Samples with `count` pods attached, summarised and compared, with the node state.

    The wrapper's costs are measured here too, since they move with
    the machine's load over a run.
    """
    pods = {
        impl.name: make_pods(
            spaces, [f"{impl.name}-s{count}-{i}" for i in range(samples)], [SAMPLE_PORT] * samples
        )
        for impl in chosen
    }
    logs = {impl.name: Path(impl.stderr_log) for impl in chosen if impl.stderr_log}
    logged_before = {name: log.stat().st_size if log.exists() else 0 for name, log in logs.items()}
    times = measure(chosen, pods, samples)
    spaces.delete(pod.netns for group in pods.values() for pod in group)
    wrapper = wrapper_costs(chosen, WRAPPER_SAMPLES)
    figures = compare(chosen, times, wrapper)
    for impl in chosen:
        if impl.owns_node:
            figures[impl.name]["nat_rules"] = impl.nat_rules()
    for name, log in logs.items():  # what the warm server's children logged for these samples
        with log.open("rb") as text:
            text.seek(logged_before[name])
            figures[name]["logged_ms"] = logged_times(text.read().decode())
    reference = next(impl for impl in chosen if impl.name == REFERENCE)
    return {
        "pods": count,
        "exec_wrapper": wrapper,
        "implementations": figures,
        "loopback_ms": loopback_times(reference, spaces, WRAPPER_SAMPLES),
    }


LOG_LINE = re.compile(
    r"^netc-cni: (ADD|DEL)\b.*: ok in ([\d.]+) ms "
    r"\(netlink ([\d.]+) ms, programs ([\d.]+) ms\)(?:;.*)?$",
    re.MULTILINE,
)
"""The plugin's line for a call: its own time, and of it the kernel's netlink work and the
time blocked starting and waiting for programs (runtime/spent.py)."""


def logged_times(text: str) -> dict[str, dict[str, float] | None]:
    """Medians of the plugin's logged times per command: work, netlink and programs (ms)."""
    found: dict[str, list[tuple[float, ...]]] = {"add": [], "del": []}
    for command, *milliseconds in LOG_LINE.findall(text):
        found[command.lower()].append(tuple(map(float, milliseconds)))
    return {
        command: {
            key: round(statistics.median(column), 2)
            for key, column in zip(
                ("work", "netlink", "programs"), zip(*rows, strict=True), strict=True
            )
        }
        if rows
        else None
        for command, rows in found.items()
    }


def preloading_launcher(log: Path) -> str:
    """A launcher that imports the whole plugin, sends stderr to `log`, then runs the plugin.

    With every module loaded before `main()` starts its clock, the time the
    plugin logs is its work alone, however its imports are arranged (the
    plugin defers some of them into `main()` so that VERSION stays cheap).
    """
    return (
        f"#!{sys.executable} -IS\n{full_import_code()}import os\n"
        f"os.dup2(os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), 2)\n"
        "from runtime.cni.plugin import entry\nentry()\n"
    )


def plugin_work(
    netc: Implementation, spaces: Namespaces, tmp: Path, tag: str
) -> dict[str, float | None]:
    """Median time netc-cni reports for ADD and DEL when nothing is left to import.

    Latency minus this is what a cold call pays before and after its work:
    interpreter start-up, imports and exit.  The plugin logs its time on
    stderr, which the driver drops, so these calls go through a launcher of
    their own (`preloading_launcher`); they are extra calls, never samples.
    """
    launcher_dir, log = tmp / f"bin-preloaded-{tag}", tmp / f"netc-cni-{tag}.log"
    launcher_dir.mkdir()
    launcher = launcher_dir / "netc-cni"
    launcher.write_text(preloading_launcher(log))
    launcher.chmod(0o755)
    preloaded = netc.with_launcher(netc.name, launcher_dir, netc.probe)
    pods = make_pods(
        spaces, [f"work-{tag}-{i}" for i in range(WORK_CALLS)], [SAMPLE_PORT] * WORK_CALLS
    )
    for pod in pods:
        preloaded.add(pod)
        preloaded.delete(pod)
    spaces.delete(pod.netns for pod in pods)
    return logged_times(log.read_text() if log.exists() else "")


def loopback_times(reference: Implementation, spaces: Namespaces, samples: int) -> dict[str, float]:
    """Median ms of containerd's loopback list alone, ADD and DEL (both sides run it first)."""
    loopback = replace(reference, conflists=reference.conflists[:1])
    pods = make_pods(spaces, [f"loopback-{i}" for i in range(samples)], [SAMPLE_PORT] * samples)
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    for pod in pods:
        times["add"].append(timed(partial(loopback.add, pod)))
        times["del"].append(timed(partial(loopback.delete, pod)))
    spaces.delete(pod.netns for pod in pods)
    return {step: summary(values)["median_ms"] for step, values in times.items()}


def first_adds(spaces: Namespaces, tmp: Path, pods: int, rounds: int) -> dict[str, Any]:
    """The first ADD on a fresh node, where the bridge, chains and sysctls get created.

    `rounds` times for each, on a node made for it and used once, who goes
    first rotating; one sample would say little.  netc twice: cold through
    the default launcher, and through the plugin a node of a cluster runs
    (the agent's shim, handing the call to the warm server the agent starts
    before it installs the plugin); the server is started outside the
    timing, and the ADD still creates what the node lacks (the agent's
    first apply, which would have made it, is not credited).
    """
    names = (NETC, AGENT_WARM, REFERENCE)
    times: dict[str, list[float]] = {name: [] for name in names}
    with Beside() as beside:
        for round_number in range(rounds):
            turn = round_number % len(names)
            for name in names[turn:] + names[:turn]:
                role = f"{name}-fresh{round_number}"
                with contextlib.ExitStack() as stack:
                    target = REFERENCE if name == REFERENCE else NETC
                    impl = impls.on_node(target, spaces, tmp, pods, role)
                    if name == AGENT_WARM:
                        server = stack.enter_context(impls.serving(impl, tmp))
                        impl = impls.agent_plugins(impl, tmp, server, tag=f"{role}-")[-1]
                    (pod,) = make_pods(spaces, [f"{name}-first{round_number}"], [SAMPLE_PORT])
                    times[name].append(timed(partial(impl.add, pod, beside)))
                    impl.settle()
                spaces.delete([pod.netns, impl.node])  # the node's namespace takes it all along
    figures = {name: summary(samples) for name, samples in times.items()}
    for name in (NETC, AGENT_WARM):
        ratio = figures[name]["median_ms"] / figures[REFERENCE]["median_ms"]
        figures[name]["ratio"] = round(ratio, 2)
    return figures


def with_variants(
    stack: contextlib.ExitStack,
    nodes: list[Implementation],
    tmp: Path,
    variants: Sequence[str],
    python: str,
) -> list[Implementation]:
    """netc, its chosen variants (on netc's node), then the reference."""
    netc, reference = nodes
    chosen = [netc]
    if "py3" in variants:
        chosen.append(impls.other_python(netc, tmp, python))
    if {"warm", "agent"} & set(variants):
        server = stack.enter_context(impls.serving(netc, tmp))
        warm = [impls.warm(netc, tmp, python, server)] if "warm" in variants else []
        if "agent" in variants:
            warm += impls.agent_plugins(netc, tmp, server)
        # the warm calls' own log lines (the plugin's time, the kernel's share) are kept
        chosen += [
            replace(impl, stderr_log=str(tmp / f"{impl.name}-calls.log"))
            if impl.name.endswith("warm")
            else impl
            for impl in warm
        ]
    return [*chosen, reference]


def run(
    tmp: Path,
    counts: Sequence[int],
    samples: int,
    jobs: int,
    *,
    variants: Sequence[str] = (),
    python: str = "/usr/bin/python3",
) -> dict[str, Any]:
    """The whole suite: nodes, cold ADDs, then samples at each pod count (ascending)."""
    counts = sorted(set(counts))
    if counts[-1] > MAX_PODS:
        raise ValueError(f"at most {MAX_PODS} background pods")
    with contextlib.ExitStack() as stack:
        spaces = stack.enter_context(Namespaces())
        progress(f"namespaces of this run are named {spaces.tag}-*")
        nodes = [impls.on_node(name, spaces, tmp, counts[-1]) for name in (NETC, REFERENCE)]
        chosen = with_variants(stack, nodes, tmp, variants, python)
        result: dict[str, Any] = {
            "samples": samples,
            "bandwidth": impls.BANDWIDTH,
            "host_ports": 1,
            "lists": LISTS,
            "node_entry": NODE_ENTRY,
            # a netc implementation's probe is its launcher's interpreter starting
            "launcher_python": {
                impl.name: python_version(impl.probe[0])
                for impl in chosen
                if impl.name.startswith(NETC)
            },
            "plugin_execs": {impl.name: impl.plugin_execs for impl in chosen},
            "first_add": first_adds(spaces, tmp, counts[-1], FIRST_ADDS),
            "phases": [],
        }
        attached = 0
        for count in counts:
            progress(f"attaching pods {attached}..{count} on each node")
            attach_background(nodes, spaces, attached, count, jobs)
            attached = count
            progress(f"sampling ADD/DEL with {count} pods attached")
            phase = measure_at(chosen, spaces, count, samples)
            phase["implementations"][NETC]["plugin_work_ms"] = plugin_work(
                nodes[0], spaces, tmp, f"p{count}"
            )
            result["phases"].append(phase)
        return result
