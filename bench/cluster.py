"""A cluster of many nodes: compiling it, building one node's part, applying one node's plan.

A cluster's size shows in three places: the compiler reads every node
(`netc check`, `netc build --node`), a node's plan has a route to every peer
(host-gw: one per peer), and `netc apply --node` makes them true and, the
next time, finds them all in place.  For each cluster size (10, 100 and 1000
nodes by default, bench.generate.cluster):

* on the command line, start-up included, as an admin or a node agent runs
  them: `netc check`, `netc build --target netc --node node-0000`, and (root)
  `netc apply --node node-0000` twice -- on a fresh node, where every route,
  the bridge and the NAT chains are created, then again with nothing to do;
* in this process, the stages those commands share: compiling the source,
  planning the node, and the two applies alone.

The applies run in throwaway node namespaces (`ncbench<hex>-...`, deleted at
the end), each with one underlay interface on the subnet every peer shares,
and a fresh state directory, so each first apply starts from nothing.
Samples rotate over the cluster sizes.
"""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Any

from bench.commands import time_commands, tool
from bench.generate import cluster, underlay_address
from bench.namespaces import Namespaces
from bench.stats import summary, timed, timed_call
from compiler.cluster import networks_for_node
from compiler.pipeline import compile_sources
from compiler.planner.node import node_plan
from compiler.planner.ops import Plan
from compiler.source import SourceFile

NODE = "node-0000"
APPLIES = ("first", "again")


def write_source(directory: Path, nodes: int) -> Path:
    """The cluster's source, its state in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cluster.netdsl"
    path.write_text(cluster(nodes, str(directory)))
    return path


def plan_of(path: Path) -> tuple[Plan, list[Any]]:
    """Compile the file and plan node-0000: the plan and the networks as it runs them."""
    compilation = compile_sources([SourceFile(str(path), path.read_text())])
    if not compilation.ok:
        raise RuntimeError(f"generated cluster does not compile: {compilation.diagnostics[0]}")
    networks = networks_for_node(compilation.networks, compilation.clusters, NODE)
    return node_plan(compilation.clusters[0], NODE, networks), networks


def _node(spaces: Namespaces, role: str) -> str:
    """A node namespace whose eth0 holds node-0000's underlay address (a /16, every peer's)."""
    name = spaces.node(role)
    for command in (
        ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"],
        ["addr", "add", f"{underlay_address(0)}/16", "dev", "eth0"],
        ["link", "set", "eth0", "up"],
        ["link", "set", "eth0p", "up"],
    ):
        subprocess.run(["ip", "-n", name, *command], check=True)
    return name


def _apply_command(path: Path, netns: str) -> list[str]:
    return [tool("netc"), "apply", str(path), "--node", NODE, "--node-netns", netns]


def _apply_sample(spaces: Namespaces, tmp: Path, nodes: int, sample: int) -> dict[str, Any]:
    """Both applies on a fresh node, on the command line and in this process."""
    from runtime.apply import apply_node

    figures: dict[str, Any] = {}
    for how in ("cli", "in_process"):
        role = f"n{nodes}-{how}-{sample}"
        netns = _node(spaces, role)
        path = write_source(tmp / role, nodes)
        if how == "cli":
            command = _apply_command(path, netns)
            figures[how] = [
                timed(partial(subprocess.run, command, check=True, capture_output=True))
                for _ in APPLIES
            ]
        else:
            the_plan, networks = plan_of(path)
            timings = [timed_call(partial(apply_node, the_plan, networks, netns)) for _ in APPLIES]
            figures[how] = [seconds for seconds, _ in timings]
            figures["changes"] = [len(changes) for _, changes in timings]
        spaces.delete([f"{spaces.tag}-{role}"])
    return figures


def _applies(tmp: Path, counts: list[int], repeats: int) -> dict[str, Any]:
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    with Namespaces() as spaces:
        for sample in range(repeats):
            for nodes in counts:
                samples[nodes].append(_apply_sample(spaces, tmp / "apply", nodes, sample))
    return {
        str(nodes): {
            "cli": {step: summary([s["cli"][i] for s in found]) for i, step in enumerate(APPLIES)},
            "in_process": {
                step: summary([s["in_process"][i] for s in found]) for i, step in enumerate(APPLIES)
            },
            "changes": found[0]["changes"],
        }
        for nodes, found in samples.items()
    }


def _stages(path: Path, repeats: int) -> dict[str, Any]:
    """Compiling the file and planning node-0000, in this process."""
    text = path.read_text()
    compiling, planning = [], []
    for _ in range(repeats):
        seconds, compilation = timed_call(partial(compile_sources, [SourceFile(str(path), text)]))
        compiling.append(seconds)
        planning.append(
            timed(
                lambda c=compilation: node_plan(
                    c.clusters[0], NODE, networks_for_node(c.networks, c.clusters, NODE)
                )
            )
        )
    return {"compile_sources": summary(compiling), "node_plan": summary(planning)}


def run(tmp: Path, counts: list[int], repeats: int, apply: bool) -> dict[str, Any]:
    """Every figure of the module docstring, by cluster size; the applies only with `apply`."""
    sizes: dict[str, Any] = {}
    cases = {}
    for nodes in counts:
        path = write_source(tmp / f"source-{nodes}", nodes)
        the_plan, _ = plan_of(path)
        sizes[str(nodes)] = {
            "lines": path.read_text().count("\n"),
            "operations": len(the_plan.operations),
            "stages": _stages(path, repeats),
        }
        netc = tool("netc")
        cases[f"check {nodes}"] = ([netc, "check", str(path)], {})
        cases[f"build {nodes}"] = (
            [netc, "build", "--target", "netc", "--node", NODE, str(path)],
            {},
        )
    commands = time_commands(cases, repeats)
    for nodes in counts:
        sizes[str(nodes)]["check"] = commands[f"check {nodes}"]
        sizes[str(nodes)]["build"] = commands[f"build {nodes}"]
    applies = _applies(tmp, counts, repeats) if apply else None
    for nodes in counts:
        sizes[str(nodes)]["apply"] = applies[str(nodes)] if applies else None
    return {"counts": counts, "repeats": repeats, "sizes": sizes}
