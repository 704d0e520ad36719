"""The text report: the JSON results laid out for a person, one section per suite.

Everything here formats what the suites returned and measures nothing, so
the report of an old results file can be printed again (`--report FILE`).
Figures are milliseconds; "a / b" is median / p90.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.attach import STEPS


def _pair(figures: dict[str, Any]) -> str:
    return f"{figures['median_ms']:8.1f} / {figures['p90_ms']:8.1f}"


def _tail(figures: dict[str, Any]) -> str:
    """Median and p99 (results saved before the p99 was kept give their p90)."""
    return f"{figures['median_ms']:8.1f} / {figures.get('p99_ms', figures['p90_ms']):8.1f}"


def _maybe(milliseconds: float | None) -> str:
    return "?" if milliseconds is None else f"{milliseconds:.1f}"


def _machine(results: dict[str, Any]) -> Iterator[str]:
    m = results["machine"]
    yield f"netc benchmarks, {results['started']} ({results['elapsed_s']:.0f} s)"
    yield (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM; {m['os']}; "
        f"kernel {m['kernel']}"
    )
    yield f"         {m['python']}; {m['iptables']}"
    yield f"compared: netc {m['netc']} vs {m['reference_plugins']}"
    yield (
        f"load average (1/5/15 min) at start {m['load_average']}, "
        f"at end {results['load_average_end']}"
    )


def _attach(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        "1. Pod attachment: bridge + IPAM + 1 hostPort + bandwidth + lo "
        f"({suite['samples']} samples each)"
    )
    yield "    pods  step  implementation         median /      p90    vs ref  unwrapped"
    for phase in suite["phases"]:
        for step in ("add", "del"):
            for index, (name, figures) in enumerate(phase["implementations"].items()):
                lead = f"{phase['pods']:5}  {step.upper():4}" if index == 0 else " " * 11
                yield (
                    f"   {lead}  {name:18} {_pair(figures[step])}   "
                    f"{figures['ratio'][step]:6.2f}x   {figures['ratio_unwrapped'][step]:6.2f}x"
                )
    yield from _where_netc_time_goes(suite)
    yield from _harness(suite)


def _where_netc_time_goes(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        "   where the time goes (ms, medians): loopback = containerd's loopback list alone; "
        "work = netc-cni's own clock,"
    )
    yield (
        "   of it kernel = blocked in netlink send/recv and on programs (runtime/spent.py);"
        " cold: starting = interpreter + full import + exit;"
    )
    yield (
        f"   warm: exec = {_entry(suite)}, launch = the launcher or shim and the hand-over "
        "(the rest); limit = the kernel's work alone"
    )
    yield (
        "   hand-over = a call with no work (a command no plugin knows) less the plugin's"
        " start-up probe, each through the harness"
    )
    beside = "lists" in suite  # since 2026-12-07: an ADD runs the loopback beside its network
    if beside:
        yield "   an ADD runs the loopback list beside the pod network, as containerd 1.6 does"
    for phase in suite["phases"]:
        loopback = phase.get("loopback_ms", {})
        for name, figures in phase["implementations"].items():
            for step in STEPS:
                line = _time_goes(
                    phase, name, figures, step, loopback.get(step), beside=beside and step == "add"
                )
                if line:
                    yield f"   {phase['pods']:5} pods {name:16} {line}"


def _time_goes(
    phase: dict[str, Any],
    name: str,
    figures: dict[str, Any],
    step: str,
    loopback: float | None,
    *,
    beside: bool,
) -> str | None:
    """One implementation's step taken apart, or None where the suite has no parts for it.

    `beside`: the loopback list ran at the same time as the pod network's, not before it.
    """
    total = figures[step]["median_ms"]
    lead = f"(loopback {_maybe(loopback)} beside) " if beside else f"loopback {_maybe(loopback)} + "
    work = figures.get("plugin_work_ms", {}).get(step)
    if name == "netc" and isinstance(work, dict):  # results before 2026-12-06 hold a figure
        starting = phase["exec_wrapper"]["netc"]["bare_ms"]
        return (
            f"{step.upper()} {total:.1f} = {lead}work "
            f"{work['work']:.1f} (kernel {work['netlink'] + work['programs']:.1f}) "
            f"+ starting {starting:.1f} + rest"
        )
    logged = (figures.get("logged_ms") or {}).get(step)
    if not logged or loopback is None:
        return None
    kernel = logged["netlink"] + logged["programs"]
    wrapper = phase["exec_wrapper"][name]["overhead_ms"]
    handover = phase["exec_wrapper"][name].get("handover_ms")
    of_it = f" (hand-over {handover:.1f})" if handover is not None else ""
    call, work = total - (0 if beside else loopback) - wrapper, logged["work"]
    return (
        f"{step.upper()} {total:.1f} = {lead}exec {wrapper:.1f} + launch "
        f"{call - work:.1f}{of_it} + work {work:.1f} (kernel {kernel:.1f}: netlink "
        f"{logged['netlink']:.1f}, programs {logged['programs']:.1f}); limit {kernel:.1f}: "
        f"work {_times(work, kernel)}, call {_times(call, kernel)}"
    )


def _times(value: float, limit: float) -> str:
    return f"{value / limit:.1f}x" if limit > 0 else "-"


def _entry(suite: dict[str, Any]) -> str:
    """How the harness ran plugins in a node: `nsenter --net` since 2026-12-07 00:48 UTC."""
    return "`nsenter --net`" if suite.get("node_entry") == "nsenter" else "`ip netns exec`"


def _harness(suite: dict[str, Any]) -> Iterator[str]:
    yield from _first_add(suite)
    last = suite["phases"][-1]
    yield f"   nat rules on the node with {last['pods']} pods: " + ", ".join(
        f"{name} {figures['nat_rules']}"
        for name, figures in last["implementations"].items()
        if "nat_rules" in figures
    )
    counts = "/".join(str(phase["pods"]) for phase in suite["phases"])
    yield f"   harness: {_entry(suite)} adds to each plugin exec (ms, at {counts} pods):"
    for name, execs in suite["plugin_execs"].items():
        costs = "/".join(
            str(phase["exec_wrapper"][name]["overhead_ms"]) for phase in suite["phases"]
        )
        yield f"     {name:14} {costs}  x {execs} exec{'s' if execs > 1 else ''} per chain"
    yield '   "unwrapped" is the ratio with those costs taken out of both medians'
    yield "   launchers: " + ", ".join(
        f"{name} {python}" for name, python in suite["launcher_python"].items()
    )


def _first_add(suite: dict[str, Any]) -> Iterator[str]:
    """Fresh nodes' first ADDs; results before commit 9a8c092 have one sample each."""
    if "first_add" not in suite:
        yield "   first ADD on a fresh node: " + ", ".join(
            f"{name} {ms:.1f}" for name, ms in suite["cold_add_ms"].items()
        )
        return
    first = suite["first_add"]
    ratios = ", ".join(
        f"{name} {figures['ratio']:.2f}x" for name, figures in first.items() if "ratio" in figures
    )
    yield (
        f"   first ADD on a fresh node ({first['netc']['n']} nodes each): "
        + ", ".join(f"{name} {_pair(figures).strip()}" for name, figures in first.items())
        + f"  ({ratios})"
    )


def _build(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        f"2. Compiler on a generated file: {suite['lines']} lines, {suite['networks']} "
        f"networks, {suite['bytes'] // 1024} KiB ({suite['repeats']} runs each)"
    )
    for label, figures in suite["commands"].items():
        yield f"   {label:36} {_pair(figures)}"
    stages = suite["in_process"]
    yield (
        f"   in process: compile_sources {stages['compile_sources']['median_ms']:.0f}"
        f" ({suite['lines_per_second']} lines/s), emit (netc target)"
        f" {stages['emit_netc']['median_ms']:.0f}"
    )


def _startup(suite: dict[str, Any]) -> Iterator[str]:
    yield f"3. Start-up ({suite['repeats']} runs each, after a warm-up run)"
    for label, figures in suite["tools"].items():
        yield f"   {label:36} {_pair(figures)}"
    profile = suite["importtime"]
    yield (
        f"   netc-cni full import, python -X importtime (median of {profile['runs']} runs):"
        f" {profile['modules']} modules, {profile['total_ms']} ms of imports"
    )
    yield "     by package (self ms, 0.5 ms and up): " + ", ".join(
        f"{name} {ms}" for name, ms in profile["by_package"] if ms >= 0.5
    )
    yield "     top modules by cumulative ms (self ms):"
    for name, own, cumulative in profile["by_cumulative"]:
        yield f"       {cumulative:7.1f}  ({own:5.1f})  {name}"
    if "tricks" in suite:
        yield from _tricks(suite["tricks"])


def _tricks(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        f"   start-up tricks, each against the plain way (median ms; data types: "
        f"{suite['data_types']}):"
    )
    for label, row in suite["tricks"].items():
        yield (
            f"     {label:62} {row['trick']['median_ms']:6.1f} vs"
            f" {row['plain']['median_ms']:6.1f}: saves {row['saves_ms']:5.1f}"
        )


def _cluster(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        f"4. A host-gw cluster: the compiler and one node's apply ({suite['repeats']} runs "
        "each; command lines, start-up included)"
    )
    yield (
        "    nodes  lines   ops        check   build --node   apply (fresh)   apply (again)"
        "   | in process: compile  plan  apply  again"
    )
    for nodes, size in size_rows(suite):
        apply = size["apply"]
        cli = (
            "   ".join(f"{apply['cli'][step]['median_ms']:13.1f}" for step in ("first", "again"))
            if apply
            else f"{'(not root)':>13}   {'':13}"
        )
        inside = (
            "  ".join(
                f"{apply['in_process'][step]['median_ms']:5.1f}" for step in ("first", "again")
            )
            if apply
            else ""
        )
        stages = size["stages"]
        yield (
            f"   {nodes:>6} {size['lines']:6} {size['operations']:5}  "
            f"{size['check']['median_ms']:11.1f}  {size['build']['median_ms']:13.1f}   {cli}"
            f"   | {stages['compile_sources']['median_ms']:17.1f} "
            f"{stages['node_plan']['median_ms']:5.1f}  {inside}"
        )
    yield '   milliseconds, medians; "apply (again)" is the second apply, nothing to change'


def size_rows(suite: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The cluster sizes measured, smallest first."""
    return sorted((int(nodes), size) for nodes, size in suite["sizes"].items())


def _load(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        f"5. Under load: {suite['pods']} pods attached by {suite['callers']} concurrent "
        "callers, then detached the same way (each implementation alone)"
    )
    yield (
        "    step  implementation    wall s  calls/s   median      p99  failures  "
        "duplicates  left (links/nat)  wall vs ref"
    )
    gone = []
    reference = suite["implementations"]["reference"]
    for step in ("add", "del"):
        for index, (name, figures) in enumerate(suite["implementations"].items()):
            phase = figures[step]
            lead = f"{step.upper():4}" if index == 0 else "    "
            left = phase.get("left_on_node")
            extra = (
                f"{phase['duplicate_addresses']:10}  {'':16}"
                if step == "add"
                else f"{'':10}  {left['links']:>7}/{left['nat_rules']:<8}"
            )
            yield (
                f"    {lead}  {name:14} {phase['wall_s']:8.2f} {phase['calls_per_s']:8.1f}"
                f" {phase['latency'].get('median_ms', 0):8.1f} {phase['p99_ms'] or 0:8.1f}"
                f" {phase['failures']:9}  {extra}  "
                f"{phase['wall_s'] / reference[step]['wall_s']:8.2f}x"
            )
            if step == "del" and "devices_gone_s" in phase:
                gone.append(f"{name} {phase['devices_gone_s']} s")
    if gone:
        yield "    no pod's device left on the node, from the DEL phase's start: " + ", ".join(gone)
    for name, figures in suite["implementations"].items():
        lock = figures.get("lock")
        if lock and name != "reference":
            served = (
                f"; {figures['served_warm']} of {lock['calls']} calls served warm"
                if "served_warm" in figures
                else ""
            )
            yield (
                f"   {name}: {lock['calls_that_waited']} of {lock['calls']} calls waited for "
                f"the network's lock, {lock['total_wait_s']} s in all (mean "
                f"{lock['mean_wait_ms']} ms a call) in {lock['phase_wall_s']} s of "
                f"phases{served}"
            )
            others = lock.get("other_locks", {})
            if others:
                yield (
                    "     and for the lock of "
                    + ", ".join(
                        f"{what}: {waits['calls_that_waited']} calls, {waits['total_wait_s']} s"
                        for what, waits in others.items()
                    )
                )


def _membership(suite: dict[str, Any]) -> Iterator[str]:
    yield (
        "6. Membership from etcd: a node joining and leaving while the others' agents run "
        "(3-member etcd on the underlay)"
    )
    yield (
        "    nodes  median / p99 (ms): join (start to routes on all peers)  claim to routes"
        "  leave (netc leave)  crash (lease s)    agent RSS"
    )
    for size in suite["agents"]:
        yield (
            f"    {size['size']:5}  {_tail(size['join'])}  {_tail(size['claim'])}"
            f"  {_tail(size['leave'])}  {_tail(size['crash'])} ({size['lease_s']})"
            f"  {size['agent_rss_kib'] // 1024:5} MiB"
        )
    watchers = suite["watchers"]
    if "failed" in watchers:
        yield f"   {watchers['watchers']} watchers in one process: failed ({watchers['failed']})"
        return
    yield (
        f"   {watchers['watchers']} watchers in one process: all knew of a join within "
        f"{watchers['all_know']} ms (median {watchers['know']['median_ms']} ms); "
        f"{watchers['revisions_per_join']} store revisions per join; "
        f"{watchers['process_rss_kib'] // 1024} MiB for them all"
    )


SECTIONS = {
    "attach": _attach,
    "build": _build,
    "startup": _startup,
    "cluster": _cluster,
    "load": _load,
    "membership": _membership,
}


def text(results: dict[str, Any]) -> str:
    """The whole report: machine, then each suite that ran, in the order they are numbered."""
    lines = list(_machine(results))
    for name, section in SECTIONS.items():
        suite = results["suites"].get(name)
        if suite is not None and "failed" in suite:
            lines += ["", f"{name}: the suite failed ({suite['failed']}); no figures"]
        elif suite is not None:
            lines += ["", *section(suite)]
    return "\n".join(lines) + "\n"
