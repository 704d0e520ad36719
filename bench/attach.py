"""ADD and DEL latency of a full pod attachment: netc-cni versus the stock plugins.

One attachment is what a runtime does for a pod sandbox on a bridge network:
a veth on the bridge, an address from IPAM, one hostPort, ingress and egress
shaping, and `lo` up.  netc does it in one plugin (the `--target netc`
conflist); the reference does it with bridge+host-local, portmap and
bandwidth, plus the `loopback` plugin run as its own list the way containerd
runs it.  Both conflists come from the same `.netdsl` source.

How it is driven, and why:

* `runtime.driver` runs each chain as libcni would (prevResult threading,
  result cache, capability args), from this one long-lived process, so no
  interpreter start-up of the harness lands in a sample.
* Each implementation gets its own throwaway node namespace, with its own
  background pods attached by itself: each is measured against the state it
  would really find (its own iptables rules, reservations and qdiscs).
* Samples alternate between the implementations, and which goes first
  alternates too, so machine noise (a neighbour's job, a kernel worker)
  falls on both alike.  Every sample is a fresh sandbox and container ID.
* The driver wraps every plugin exec in `ip netns exec`, a cost real
  runtimes do not pay; it is measured and reported with the count of
  wrapped execs per chain, so the ratio can be read with it in mind.
"""

from __future__ import annotations

import json
import re
import secrets
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from bench.namespaces import Namespaces, netns_path
from bench.stats import ratio, summary, timed
from compiler import emit
from compiler.pipeline import compile_sources
from compiler.planner.context import bandwidth_from_option, mapping_from_option
from compiler.source import SourceFile
from runtime import driver
from runtime.install import install

NETWORK = """
network benchnet {{
    state-dir "{state}"
    bridge nb-br0 {{
        gateway
        masquerade
        hairpin
    }}
    ipam {{
        subnet 10.78.0.0/{prefix}
        route 0.0.0.0/0
        data-dir "{data}"
    }}
    hostport
    bandwidth
}}
"""

LOOPBACK = {"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}
"""containerd's separate loopback network (go-cni's default `lo` config)."""

BANDWIDTH = "ingress=20M,egress=20M"
BACKGROUND_PORTS = 30000
SAMPLE_PORT = 40080
MAX_PODS = 8000
"""Background pods take host ports 30000 up, below the sample's 40080."""

IMPLEMENTATIONS = ("netc", "reference")
"""Also the `netc build --target` each one's conflist is compiled for; netc first."""
WORK_CALLS = 5
"""Extra netc ADD/DEL calls per pod count whose in-plugin time is read from its log."""
WRAPPER_SAMPLES = 30


@dataclass(frozen=True)
class Pod:
    """A sandbox: its namespace, its container ID and the host port it maps to 80."""

    netns: str
    container_id: str
    host_port: int


@dataclass
class Implementation:
    """One way of attaching pods: its node, its conflists in ADD order, its plugin path."""

    name: str
    node: str
    conflists: tuple[driver.Conflist, ...]
    cni_path: tuple[str, ...]
    cache_dir: str

    @property
    def plugin_execs(self) -> int:
        """Plugins the driver execs per ADD or DEL (host-local is exec'd by bridge itself)."""
        return sum(len(conflist.plugins) for conflist in self.conflists)

    def invocation(self, pod: Pod) -> driver.Invocation:
        """What a runtime passes for `pod`: one hostPort and explicit rates."""
        return driver.Invocation(
            pod.container_id, netns_path(pod.netns),
            port_mappings=(mapping_from_option(f"{pod.host_port}:80"),),
            bandwidth=bandwidth_from_option(BANDWIDTH), cni_path=self.cni_path,
            cache_dir=self.cache_dir, node_netns=self.node)

    def add(self, pod: Pod) -> None:
        """ADD every list, in order (loopback first, as containerd does)."""
        for conflist in self.conflists:
            driver.add(conflist, self.invocation(pod))

    def delete(self, pod: Pod) -> None:
        """DEL every list, in reverse order."""
        for conflist in reversed(self.conflists):
            driver.delete(conflist, self.invocation(pod))

    def nat_rules(self) -> int:
        """Rules in the node's nat table: the state portmap and masquerading scale with."""
        saved = subprocess.run(["ip", "netns", "exec", self.node, "iptables-save", "-t", "nat"],
                               capture_output=True, text=True, check=True).stdout
        return sum(1 for line in saved.splitlines() if line.startswith("-A"))


def subnet_prefix(pods: int) -> int:
    """The longest IPv4 prefix (at most /24) with room for `pods`, a sample and the gateway."""
    return min(24, 32 - (pods + 3).bit_length())


def conflist(text: str, target: str) -> driver.Conflist:
    """Compile `.netdsl` text for a target, as `netc build` would."""
    compilation = compile_sources([SourceFile("bench.netdsl", text)])
    if not compilation.ok:
        raise RuntimeError(f"bench network does not compile: {compilation.diagnostics}")
    (network,) = compilation.networks
    return driver.Conflist(emit.render(emit.conflist(network, target)).encode())


def implementation(name: str, spaces: Namespaces, tmp: Path, prefix: int,
                   cni_path: tuple[str, ...]) -> Implementation:
    """A node namespace and the compiled lists for one implementation, state under `tmp`."""
    home = tmp / name
    text = NETWORK.format(state=home / "state", data=home / "ipam", prefix=prefix)
    lists = [conflist(text, name)]
    if name == "reference":
        lists.insert(0, driver.Conflist(json.dumps(LOOPBACK).encode()))
    return Implementation(name, spaces.node(f"{name}-node"), tuple(lists), cni_path,
                          str(home / "cache"))


def make_pods(spaces: Namespaces, roles: Sequence[str], ports: Iterable[int]) -> list[Pod]:
    """Fresh sandboxes, each with a runtime-like 64-hex container ID."""
    return [Pod(netns, secrets.token_hex(32), port)
            for netns, port in zip(spaces.create(roles), ports, strict=True)]


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


def attach_background(implementations: Sequence[Implementation], spaces: Namespaces,
                      start: int, stop: int, jobs: int) -> None:
    """Attach pods `start`..`stop`-1 on every node, each pod with its own host port."""
    work = []
    for impl in implementations:
        roles = [f"{impl.name}-b{i}" for i in range(start, stop)]
        pods = make_pods(spaces, roles, range(BACKGROUND_PORTS + start, BACKGROUND_PORTS + stop))
        work += [(impl, pod) for pod in pods]
    in_parallel(lambda item: item[0].add(item[1]), work, jobs)


def exec_wrapper_overhead(node: str, samples: int) -> dict[str, Any]:
    """What `ip netns exec` adds to each plugin exec: wrapped minus bare `true`, interleaved."""
    bare, wrapped = [], []
    for _ in range(samples):
        bare.append(timed(lambda: subprocess.run(["true"], check=True)))
        wrapped.append(timed(lambda: subprocess.run(["ip", "netns", "exec", node, "true"],
                                                    check=True)))
    bare_ms, wrapped_ms = summary(bare)["median_ms"], summary(wrapped)["median_ms"]
    return {"bare_true_ms": bare_ms, "ip_netns_exec_true_ms": wrapped_ms,
            "overhead_ms": round(wrapped_ms - bare_ms, 2)}


def measure(implementations: Sequence[Implementation], pods: dict[str, list[Pod]],
            samples: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved ADD then DEL of one fresh pod per implementation, `samples` rounds."""
    times: dict[str, dict[str, list[float]]] = {
        impl.name: {"add": [], "del": []} for impl in implementations}
    for round_number in range(samples):
        order = implementations if round_number % 2 == 0 else list(reversed(implementations))
        for impl in order:
            pod = pods[impl.name][round_number]
            times[impl.name]["add"].append(timed(partial(impl.add, pod)))
            times[impl.name]["del"].append(timed(partial(impl.delete, pod)))
    return times


def measure_at(implementations: Sequence[Implementation], spaces: Namespaces, count: int,
               samples: int) -> dict[str, Any]:
    """Samples with `count` pods attached, summarised per implementation and compared.

    The `ip netns exec` cost is measured here too, since it moves with the
    machine's load over a run.
    """
    pods = {impl.name: make_pods(spaces, [f"{impl.name}-s{count}-{i}" for i in range(samples)],
                                 [SAMPLE_PORT] * samples) for impl in implementations}
    times = measure(implementations, pods, samples)
    spaces.delete(pod.netns for group in pods.values() for pod in group)
    phase: dict[str, Any] = {
        "pods": count, "exec_wrapper": exec_wrapper_overhead(implementations[0].node,
                                                             WRAPPER_SAMPLES)}
    overhead = phase["exec_wrapper"]["overhead_ms"]
    for impl in implementations:
        phase[impl.name] = {"add": summary(times[impl.name]["add"]),
                            "del": summary(times[impl.name]["del"]),
                            "nat_rules": impl.nat_rules()}
    phase["ratio"] = {step: ratio(phase["netc"][step], phase["reference"][step])
                      for step in ("add", "del")}
    phase["ratio_unwrapped"] = {step: _unwrapped_ratio(implementations, phase, step, overhead)
                                for step in ("add", "del")}
    return phase


def _unwrapped_ratio(implementations: Sequence[Implementation], phase: dict[str, Any],
                     step: str, overhead_ms: float) -> float:
    """netc/reference medians once each chain's `ip netns exec` wrappers are taken out.

    Real runtimes exec plugins directly; the reference chain has more plugin
    execs, so the wrapper inflates it more than netc.
    """
    unwrapped = {impl.name: phase[impl.name][step]["median_ms"] - impl.plugin_execs * overhead_ms
                 for impl in implementations}
    return round(unwrapped["netc"] / unwrapped["reference"], 2)


LOGGING_WRAPPER = '#!/bin/sh\nexec {launcher} "$@" 2>>{log}\n'
LOG_LINE = re.compile(r"^netc-cni: (ADD|DEL)\b.*: ok in ([\d.]+) ms$", re.MULTILINE)


def plugin_work(impl: Implementation, spaces: Namespaces, tmp: Path, calls: int,
                tag: str) -> dict[str, float | None]:
    """Median time netc-cni itself reports for ADD and DEL, from `main()` to its answer.

    That excludes the interpreter's start-up and the imports of the entry
    module, so latency minus this is what a call pays before it does any
    work.  The plugin logs it on stderr, which the driver drops; a wrapper
    on a separate plugin path keeps it.  These calls are extra, never samples.
    """
    wrapper_dir = tmp / f"logging-bin-{tag}"
    wrapper_dir.mkdir()
    log = tmp / f"netc-cni-{tag}.log"
    wrapper = wrapper_dir / "netc-cni"
    wrapper.write_text(LOGGING_WRAPPER.format(launcher=Path(impl.cni_path[0]) / "netc-cni",
                                              log=log))
    wrapper.chmod(0o755)
    logging = replace(impl, cni_path=(str(wrapper_dir), *impl.cni_path))
    pods = make_pods(spaces, [f"work-{tag}-{i}" for i in range(calls)], [SAMPLE_PORT] * calls)
    for pod in pods:
        logging.add(pod)
        logging.delete(pod)
    spaces.delete(pod.netns for pod in pods)
    found: dict[str, list[float]] = {"ADD": [], "DEL": []}
    for command, milliseconds in LOG_LINE.findall(log.read_text() if log.exists() else ""):
        found[command].append(float(milliseconds))
    return {command.lower(): statistics.median(values) if values else None
            for command, values in found.items()}


def cold_add(impl: Implementation, spaces: Namespaces) -> float:
    """ADD (then an untimed DEL) on a fresh node: bridge, chains and sysctls get created."""
    (pod,) = make_pods(spaces, [f"{impl.name}-cold"], [SAMPLE_PORT])
    elapsed = timed(partial(impl.add, pod))
    impl.delete(pod)
    spaces.delete([pod.netns])
    return elapsed


def progress(message: str) -> None:
    """A line on stderr, so stdout holds only the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(tmp: Path, counts: Sequence[int], samples: int, jobs: int) -> dict[str, Any]:
    """The whole suite: nodes, cold ADDs, then samples at each pod count (ascending)."""
    counts = sorted(set(counts))
    if counts[-1] > MAX_PODS:
        raise ValueError(f"at most {MAX_PODS} background pods")
    cni_path = (str(install(tmp / "bin").parent), *driver.DEFAULT_CNI_PATH)
    with Namespaces() as spaces:
        progress(f"namespaces of this run are named {spaces.tag}-*")
        implementations = [implementation(name, spaces, tmp, subnet_prefix(counts[-1]), cni_path)
                           for name in IMPLEMENTATIONS]
        result: dict[str, Any] = {
            "samples": samples, "bandwidth": BANDWIDTH, "host_ports": 1,
            "plugin_execs": {impl.name: impl.plugin_execs for impl in implementations},
            "cold_add_ms": {impl.name: round(cold_add(impl, spaces) * 1000, 2)
                            for impl in implementations},
            "phases": []}
        attached = 0
        for count in counts:
            progress(f"attaching pods {attached}..{count} on each node")
            attach_background(implementations, spaces, attached, count, jobs)
            attached = count
            progress(f"sampling ADD/DEL with {count} pods attached")
            phase = measure_at(implementations, spaces, count, samples)
            phase["netc"]["plugin_work_ms"] = plugin_work(implementations[0], spaces, tmp,
                                                          WORK_CALLS, f"p{count}")
            result["phases"].append(phase)
        return result
