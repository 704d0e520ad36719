"""Under load: many pods attached by concurrent callers, then detached the same way.

What a node sees when a deployment scales up: 200 pods attached by 20
callers at once, then detached the same way (`--load-pods`,
`--load-callers`).  netc through the plugin a node runs, the agent's, cold
and warm (netc-agent, netc-agent-warm), and the reference each get a fresh
node of their own, and each runs alone, so none competes with another for
the two CPUs.  Every pod is the attach suite's full attachment, with a host
port of its own.  Reported for each implementation and direction: the wall
time of the whole phase, each call's latency (median, p99), failures, and --
after attaching -- duplicate addresses; after detaching, when the node had
no pod's device left (a warm netc DEL answers before they are deleted) and
what is left on it.

What limits netc: its calls say on stderr how long they waited for each
lock (docs/runtime.md, "Locks"): the network's, taken to change what its
pods share; an attachment's; the addresses'; the host-port claims'.  The
suite adds those waits up against the calls' wall time, and counts the
calls the warm server took (a shim that waits too long for a hand-over
runs the call itself).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import implementations as impls
from bench.attach import make_pods, progress
from bench.implementations import AGENT, AGENT_WARM, NETC, REFERENCE, Implementation, Pod
from bench.namespaces import Namespaces
from bench.stats import percentile, summary, timed_call
from tests.membership.agents import until

PORTS = 32000
DEVICES_GONE_WAIT = 30.0
LOCK_WAIT = re.compile(
    r"^netc-cni: waited ([\d.]+) ms for the lock of (network|attachment|"
    r"the addresses|the host-port claims)\b",
    re.MULTILINE,
)
CALL_DONE = re.compile(r"^netc-cni: (ADD|DEL)\b.*: (ok|failed)", re.MULTILINE)


def run(tmp: Path, pods: int, callers: int) -> dict[str, Any]:
    """Each implementation on a node of its own, one after the other."""
    results: dict[str, Any] = {"pods": pods, "callers": callers, "implementations": {}}
    for name in (AGENT, AGENT_WARM, REFERENCE):
        with contextlib.ExitStack() as stack:
            spaces = stack.enter_context(Namespaces())
            impl = _node(stack, name, spaces, tmp, pods=pods)
            progress(f"load: {pods} pods, {callers} callers, {name}")
            results["implementations"][name] = _load(impl, spaces, pods, callers)
            if name == AGENT_WARM:
                results["implementations"][name]["served_warm"] = _served_warm(tmp, impl)
    return results


def _node(
    stack: contextlib.ExitStack, name: str, spaces: Namespaces, tmp: Path, *, pods: int
) -> Implementation:
    """A fresh node for `name`, whose plugins log their stderr to a file of its own.

    netc's calls go through the plugin a node of a cluster runs, the agent's
    (`impls.agent_plugins`): its shim hands them to the warm server
    (netc-agent-warm), or with no server runs the cold plugin on the node's
    python3 (netc-agent).
    """
    if name == REFERENCE:
        impl = impls.on_node(REFERENCE, spaces, tmp, pods, role=f"load-{name}")
    else:
        impl = impls.on_node(NETC, spaces, tmp, pods, role=f"load-{name}")
        server = stack.enter_context(impls.serving(impl, tmp)) if name == AGENT_WARM else None
        impl = impls.agent_plugins(impl, tmp, server, tag=f"load-{name}-")[-1]
    return replace(impl, name=name, stderr_log=str(tmp / f"load-{name}.log"))


def _load(impl: Implementation, spaces: Namespaces, count: int, callers: int) -> dict[str, Any]:
    pods = make_pods(
        spaces, [f"{impl.name}-l{i}" for i in range(count)], range(PORTS, PORTS + count)
    )
    attach = _phase(impl.add, pods, callers)
    addresses = [result["ips"][0]["address"] for result in attach.pop("results")]
    attach["duplicate_addresses"] = len(addresses) - len(set(addresses))
    started = time.perf_counter()
    detach = _phase(impl.delete, pods, callers)
    detach.pop("results")
    detach["devices_gone_s"] = _devices_gone(impl, started)
    detach["left_on_node"] = _left_on_node(impl)
    figures = {"add": attach, "del": detach}
    if impl.stderr_log:
        figures["lock"] = _lock_waits(Path(impl.stderr_log), attach["wall_s"] + detach["wall_s"])
    return figures


def _phase(action: Any, pods: Sequence[Pod], callers: int) -> dict[str, Any]:
    """Every pod through `action` by `callers` threads: wall time, latencies, failures, and
    what each call that succeeded returned."""

    def one(pod: Pod) -> tuple[float, Any, str | None]:
        try:
            elapsed, result = timed_call(lambda: action(pod))
        except Exception as error:
            return 0.0, None, str(error)
        return elapsed, result, None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        outcomes = list(pool.map(one, pods))
    wall = time.perf_counter() - started
    latencies = [elapsed for elapsed, _, error in outcomes if error is None]
    failures = [error for _, _, error in outcomes if error is not None]
    figures = summary(latencies) if latencies else {}
    figures.pop("samples_ms", None)
    return {
        "wall_s": round(wall, 2),
        "calls_per_s": round(len(pods) / wall, 1),
        "latency": figures,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "failures": len(failures),
        "first_failures": failures[:3],
        "results": [result for _, result, error in outcomes if error is None],
    }


def _devices_gone(impl: Implementation, started: float) -> float | None:
    """Seconds from the detach phase's start until no pod's link is left on the node.

    A warm netc DEL answers before the kernel has deleted the pod's devices
    (runtime/executor.py, `remove`): the phase's wall time is what the
    runtime waits for, this is when the node is done.  None: links were
    still there after `DEVICES_GONE_WAIT` seconds (see left_on_node).
    """
    if not until(lambda: not _pod_links(impl), DEVICES_GONE_WAIT, step=0.01):
        return None
    return round(time.perf_counter() - started, 2)


def _left_on_node(impl: Implementation) -> dict[str, int]:
    """Links other than lo and bridges, and nat rules: what detaching all pods left behind."""
    return {"links": _pod_links(impl), "nat_rules": impl.nat_rules()}


def _pod_links(impl: Implementation) -> int:
    """How many links the node has other than lo and bridges."""
    links = json.loads(
        subprocess.run(
            ["ip", "-n", impl.node, "-j", "-d", "link", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return sum(
        1
        for link in links
        if link["ifname"] != "lo" and link.get("linkinfo", {}).get("info_kind") != "bridge"
    )


def _lock_waits(log: Path, wall_s: float) -> dict[str, Any]:
    """netc's calls' waits for its locks, from their stderr: the network's, then the others'.

    A call waits for each lock at most once, so a wait is a call that waited.
    """
    text = log.read_text() if log.exists() else ""
    waits: dict[str, list[float]] = {}
    for ms, lock in LOCK_WAIT.findall(text):
        waits.setdefault(lock.removeprefix("the "), []).append(float(ms))
    calls = len(CALL_DONE.findall(text))
    network = waits.pop("network", [])
    return {
        "calls": calls,
        "calls_that_waited": len(network),
        "total_wait_s": round(sum(network) / 1000, 2),
        "mean_wait_ms": round(sum(network) / calls, 1) if calls else None,
        "other_locks": {
            lock: {"calls_that_waited": len(ms), "total_wait_s": round(sum(ms) / 1000, 2)}
            for lock, ms in sorted(waits.items())
        },
        "phase_wall_s": round(wall_s, 2),
    }


def _served_warm(tmp: Path, impl: Implementation) -> int:
    """Calls the warm server's children took over (each logs one line)."""
    log = impls.server_log(impl, tmp)
    return log.read_text().count("call handed to process") if log.exists() else 0
