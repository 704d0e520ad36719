"""The benchmark suite's own logic, without timing anything (figures are never asserted).

The generated file must stay valid as the language grows, or `python -m bench`
would fail after minutes of attach samples; the statistics and the report
must say what they claim.
"""

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench import load, report, startup, tricks
from bench.cluster import NODE, plan_of, write_source
from bench.generate import netdsl
from bench.implementations import (
    LISTS,
    LOOPBACK,
    NETC,
    NETWORK,
    REFERENCE,
    Implementation,
    Pod,
    Server,
    sandbox_lists,
    server_command,
    server_idle,
    subnet_prefix,
)
from bench.stats import percentile, ratio, summary
from compiler.pipeline import compile_sources
from compiler.planner.ops import Kind
from compiler.source import SourceFile
from runtime import driver
from runtime.packaging import PYTHON
from tests.membership.agents import until


def test_generated_file_has_the_lines_asked_for_and_compiles_without_errors():
    text, networks = netdsl(3000)
    assert text.count("\n") == 3000
    compilation = compile_sources([SourceFile("generated.netdsl", text)])
    assert compilation.ok, compilation.diagnostics[:3]
    assert len(compilation.networks) == networks > 100
    bridges = {n.bridge.name for n in compilation.networks}
    assert len(bridges) == networks


def test_a_file_too_small_for_a_network_is_still_valid():
    text, networks = netdsl(5)
    assert networks == 0
    assert compile_sources([SourceFile("tiny.netdsl", text)]).ok


def test_percentile_interpolates_and_summary_reports_milliseconds():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == 4.6
    assert percentile([7.0], 0.9) == 7.0
    figures = summary([0.010, 0.020, 0.030])
    assert (figures["median_ms"], figures["min_ms"], figures["max_ms"]) == (20.0, 10.0, 30.0)
    assert ratio({"median_ms": 30.0}, {"median_ms": 20.0}) == 1.5


def test_the_pod_subnet_holds_every_pod_a_sample_and_the_gateway():
    for pods in (0, 100, 252, 253, 500, 4000):
        hosts = ipaddress.ip_network(f"10.0.0.0/{subnet_prefix(pods)}").num_addresses - 2
        assert hosts >= pods + 2


def test_plugin_modules_start_at_the_entry_and_follow_lazy_imports():
    modules = startup.plugin_modules()
    assert modules[0] == startup.ENTRY
    assert "runtime.ops.nat" in modules  # imported inside a function of runtime.ops
    assert "runtime.driver" not in modules  # `netc run` only
    assert not any(m.startswith("runtime.cli") for m in modules)


def test_each_trick_and_its_plain_way_run_and_the_baseline_is_what_the_plugin_loads():
    baseline = tricks.plugin_stdlib()
    assert {"json", "re"} <= set(baseline)  # the plugin parses its stdin
    assert not any(name.split(".")[0] in {"compiler", "runtime"} for name in baseline)
    assert tricks.plugin_data_types() > 20
    for label, sides in tricks.cases().items():
        for command, options in sides:
            done = subprocess.run(command, check=False, capture_output=True, **options)
            assert done.returncode == 0, (label, done.stderr[-500:])


def _figures(median):
    return {
        "n": 3,
        "median_ms": median,
        "p90_ms": median * 1.2,
        "min_ms": median,
        "max_ms": median,
        "samples_ms": [median] * 3,
    }


def _results(suites):
    """A results document around `suites`, as `python -m bench` saves it."""
    return {
        "started": "2030-01-01T00:00:00Z",
        "elapsed_s": 1.0,
        "load_average_end": [0, 0, 0],
        "machine": {
            "cpu": "CPU",
            "cores": 2,
            "memory": "1 GiB",
            "os": "OS",
            "kernel": "6",
            "python": "CPython 3.11",
            "iptables": "iptables",
            "netc": "netc",
            "reference_plugins": "plugins",
            "load_average": [0, 0, 0],
        },
        "suites": suites,
    }


def _implementation(median, ratio, **extra):
    return {
        "add": _figures(median),
        "del": _figures(median),
        "ratio": {"add": ratio, "del": ratio},
        "ratio_unwrapped": {"add": ratio + 0.1, "del": ratio + 0.1},
        **extra,
    }


def _attach_suite(**extra):
    """Attach results: one phase, at 100 pods, of netc cold and warm and the reference."""
    wrapper = {
        name: {"overhead_ms": cost, "bare_ms": 100.0}
        for name, cost in (("netc", 30.5), ("netc-warm", 2.0), ("reference", 1.2))
    }
    wrapper["netc-warm"]["handover_ms"] = 3.0
    work = {"work": 30.0, "netlink": 6.0, "programs": 4.0}
    phase = {
        "pods": 100,
        "exec_wrapper": wrapper,
        "loopback_ms": {"add": 8.0, "del": 7.0},
        "implementations": {
            "netc": _implementation(
                150, 1.5, nat_rules=208, plugin_work_ms={"add": work, "del": None}
            ),
            "netc-warm": _implementation(50, 0.5, logged_ms={"add": work, "del": None}),
            "reference": _implementation(100, 1.0, nat_rules=700),
        },
    }
    return _results(
        {
            "attach": {
                "samples": 3,
                "first_add": {
                    "netc": {**_figures(60), "ratio": 0.6},
                    "netc-agent-warm": {**_figures(40), "ratio": 0.4},
                    "reference": _figures(100),
                },
                "plugin_execs": {"netc": 1, "netc-warm": 1, "reference": 4},
                "launcher_python": {"netc": "Python 3.11"},
                "phases": [phase],
                **extra,
            }
        }
    )


def test_the_report_has_a_row_per_pod_count_step_and_implementation():
    results = _attach_suite()
    rows = [line.split() for line in report.text(results).splitlines()]
    assert ["100", "ADD", "netc", "150.0", "/", "180.0", "1.50x", "1.60x"] in rows
    assert ["netc-warm", "50.0", "/", "60.0", "0.50x", "0.60x"] in rows
    assert ["reference", "100.0", "/", "120.0", "1.00x", "1.10x"] in rows
    assert ["100", "DEL", "netc", "150.0", "/", "180.0", "1.50x", "1.60x"] in rows
    assert [
        "100",
        "pods",
        "netc",
        "ADD",
        "150.0",
        "=",
        "loopback",
        "8.0",
        "+",
        "work",
        "30.0",
        "(kernel",
        "10.0)",
        "+",
        "starting",
        "100.0",
        "+",
        "rest",
    ] in rows
    # 50 = loopback 8 + exec 2 + launch 10 (3 of it the hand-over) + work 30; the kernel's 10
    # is the limit
    assert [
        "100",
        "pods",
        "netc-warm",
        "ADD",
        "50.0",
        "=",
        "loopback",
        "8.0",
        "+",
        "exec",
        "2.0",
        "+",
        "launch",
        "10.0",
        "(hand-over",
        "3.0)",
        "+",
        "work",
        "30.0",
        "(kernel",
        "10.0:",
        "netlink",
        "6.0,",
        "programs",
        "4.0);",
        "limit",
        "10.0:",
        "work",
        "3.0x,",
        "call",
        "4.0x",
    ] in rows
    assert not any(row[:4] == ["100", "pods", "netc", "DEL"] for row in rows), "no work for DEL"
    assert [
        "nat",
        "rules",
        "on",
        "the",
        "node",
        "with",
        "100",
        "pods:",
        "netc",
        "208,",
        "reference",
        "700",
    ] in rows
    assert [
        "first",
        "ADD",
        "on",
        "a",
        "fresh",
        "node",
        "(3",
        "nodes",
        "each):",
        "netc",
        "60.0",
        "/",
        "72.0,",
        "netc-agent-warm",
        "40.0",
        "/",
        "48.0,",
        "reference",
        "100.0",
        "/",
        "120.0",
        "(netc",
        "0.60x,",
        "netc-agent-warm",
        "0.40x)",
    ] in rows
    assert ["reference", "1.2", "x", "4", "execs", "per", "chain"] in rows
    assert ["netc", "30.5", "x", "1", "exec", "per", "chain"] in rows


def test_a_report_saved_before_first_adds_were_sampled_still_prints():
    phase = {
        "pods": 0,
        "exec_wrapper": {"netc": {"overhead_ms": 1.0, "bare_ms": 50.0}},
        "implementations": {
            "netc": _implementation(80, 0.8, nat_rules=8, plugin_work_ms={"add": 20.0, "del": 30.0})
        },
    }
    results = _results(
        {
            "attach": {
                "samples": 3,
                "cold_add_ms": {"netc": 144.4, "reference": 109.0},
                "plugin_execs": {"netc": 1},
                "launcher_python": {"netc": "Python 3.11"},
                "phases": [phase],
            }
        }
    )
    rows = [line.split() for line in report.text(results).splitlines()]
    assert [
        "first",
        "ADD",
        "on",
        "a",
        "fresh",
        "node:",
        "netc",
        "144.4,",
        "reference",
        "109.0",
    ] in rows


def test_the_generated_cluster_compiles_and_its_first_node_routes_to_every_peer(tmp_path):
    the_plan, networks = plan_of(write_source(tmp_path, 300))
    routes = [op for op in the_plan.operations if op.kind == Kind.ROUTE_NODE]
    assert len(routes) == 299
    assert {op.params.dev for op in routes} == {None}  # host-gw
    assert the_plan.node.node == NODE
    assert [str(s.cidr) for s in networks[0].ipam.subnets] == ["10.0.0.0/24"]


def _cluster_size(apply):
    figures = _figures(100.0)
    return {
        "lines": 60,
        "operations": 19,
        "check": figures,
        "build": figures,
        "stages": {"compile_sources": _figures(5.0), "node_plan": _figures(0.5)},
        "apply": apply,
    }


def test_the_cluster_report_has_a_row_per_size_with_or_without_applies():
    applied = {
        "cli": {"first": _figures(300.0), "again": _figures(200.0)},
        "in_process": {"first": _figures(20.0), "again": _figures(2.0)},
        "changes": [17, 0],
    }
    results = _results(
        {
            "cluster": {
                "repeats": 3,
                "counts": [10, 1000],
                "sizes": {"1000": _cluster_size(None), "10": _cluster_size(applied)},
            }
        }
    )
    rows = [line.split() for line in report.text(results).splitlines()]
    assert [
        "10",
        "60",
        "19",
        "100.0",
        "100.0",
        "300.0",
        "200.0",
        "|",
        "5.0",
        "0.5",
        "20.0",
        "2.0",
    ] in rows
    assert ["1000", "60", "19", "100.0", "100.0", "(not", "root)", "|", "5.0", "0.5"] in rows


def _load_phase(wall, step, **extra):
    phase = {
        "wall_s": wall,
        "calls_per_s": 200 / wall,
        "failures": 0,
        "p99_ms": 900.0,
        "latency": {"median_ms": 400.0},
        **extra,
    }
    if step == "add":
        phase["duplicate_addresses"] = 0
    else:
        phase["left_on_node"] = {"links": 0, "nat_rules": 8}
    return phase


def test_the_load_report_compares_each_phase_with_the_reference_and_says_what_waited():
    suite = {
        "pods": 200,
        "callers": 20,
        "implementations": {
            name: {
                "add": _load_phase(wall, "add"),
                "del": _load_phase(wall, "del"),
                **(
                    {
                        "lock": {
                            "calls": 400,
                            "calls_that_waited": 390,
                            "total_wait_s": 60.0,
                            "mean_wait_ms": 150.0,
                            "phase_wall_s": 4.0,
                        }
                    }
                    if name != "reference"
                    else {}
                ),
                **({"served_warm": 400} if name == "netc-warm" else {}),
            }
            for name, wall in (("netc", 2.0), ("netc-warm", 1.0), ("reference", 4.0))
        },
    }
    text = report.text(_results({"load": suite}))
    rows = [line.split() for line in text.splitlines()]
    assert ["ADD", "netc", "2.00", "100.0", "400.0", "900.0", "0", "0", "0.50x"] in rows
    assert ["netc-warm", "1.00", "200.0", "400.0", "900.0", "0", "0/8", "0.25x"] in rows
    assert ["reference", "4.00", "50.0", "400.0", "900.0", "0", "0/8", "1.00x"] in rows
    assert "netc-warm: 390 of 400 calls waited for the network's lock" in text
    assert "400 of 400 calls served warm" in text
    assert "and for the lock of" not in text, "results from before the other locks were logged"


def test_the_load_suite_adds_up_the_waits_of_each_lock(tmp_path):
    log = tmp_path / "load-netc.log"
    log.write_text(
        "netc-cni: waited 2.5 ms for the lock of network pods\n"
        "netc-cni: waited 1.0 ms for the lock of attachment 0a1b\n"
        "netc-cni: waited 3.0 ms for the lock of the addresses of pods\n"
        "netc-cni: waited 5.0 ms for the lock of the addresses of pods\n"
        "netc-cni: ADD abc/eth0: ok in 12.0 ms\n"
        "netc-cni: DEL abc/eth0: ok in 30.0 ms\n"
    )
    waits = load._lock_waits(log, 4.0)
    assert waits == {
        "calls": 2,
        "calls_that_waited": 1,
        "total_wait_s": 0.0,
        "mean_wait_ms": 1.2,
        "phase_wall_s": 4.0,
        "other_locks": {
            "addresses": {"calls_that_waited": 2, "total_wait_s": 0.01},
            "attachment": {"calls_that_waited": 1, "total_wait_s": 0.0},
        },
    }
    suite = {
        "pods": 200,
        "callers": 20,
        "implementations": {
            name: {
                "add": _load_phase(wall, "add"),
                "del": _load_phase(wall, "del"),
                **({"lock": waits} if name != "reference" else {}),
            }
            for name, wall in (("netc", 2.0), ("reference", 4.0))
        },
    }
    text = report.text(_results({"load": suite}))
    assert "and for the lock of addresses: 2 calls, 0.01 s, attachment: 1 calls, 0.0 s" in text


def test_the_membership_section_has_a_row_per_cluster_size_and_the_watchers_line():
    size = {
        "size": 3,
        "lease_s": 3,
        "agent_rss_kib": 36_000,
        **{
            step: _figures(ms)
            for step, ms in (("join", 560.0), ("claim", 60.0), ("leave", 350.0), ("crash", 3100.0))
        },
    }
    suite = {
        "agents": [size, {**size, "size": 20}],
        "watchers": {
            "watchers": 1000,
            "all_know": 420.0,
            "know": _figures(200.0),
            "revisions_per_join": 1,
            "process_rss_kib": 400_000,
        },
    }
    text = report.text(_results({"membership": suite}))
    rows = [line for line in text.splitlines() if line.startswith(("        3", "       20"))]
    assert len(rows) == 2 and "   560.0 /    672.0" in rows[0] and "(3)" in rows[0]
    assert "1000 watchers in one process: all knew of a join within 420.0 ms" in text
    suite["watchers"] = {"watchers": 1000, "failed": "watchers could not claim their blocks"}
    text = report.text(_results({"membership": suite}))
    assert "1000 watchers in one process: failed (watchers could not claim" in text
    assert len([line for line in text.splitlines() if line.startswith("       20")]) == 1


def test_only_a_launcher_that_hands_calls_to_a_server_is_timed_handing_one_over():
    impl = Implementation("netc", "node", (), ("/bin",), "/cache", ())
    warm = impl.with_launcher("netc-warm", Path("/w"), ("probe",), Server(Path("/s"), 4242))
    cold = impl.with_launcher("netc-py3", Path("/c"), ("probe",))
    assert warm.handing_over == ("/w/netc-cni",) and warm.cni_path[0] == "/w"
    assert warm.server == 4242
    assert cold.handing_over is None and cold.server is None


def test_the_warm_server_runs_on_the_interpreter_netcs_image_carries():
    """A node's agent runs `netc serve-cni` on its image's python3, not on the bench's."""
    command = server_command(Path("/run/x.sock"))
    assert command[0] == str(PYTHON)
    assert command[-3:] == ["serve-cni", "--socket", "/run/x.sock"]
    done = subprocess.run([*command[:-3], "--version"], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("netc, version")


SERVER_TREE = """
import os, signal, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # as the server: the kernel reaps children
def child(code):
    if os.fork() == 0:
        exec(code)
        os._exit(0)
child("time.sleep(60)")  # the spare, waiting
if len(sys.argv) > 1:
    child(sys.argv[1])  # a call still at work after its answer
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def server_tree():
    """A process shaped like a warm server: a spare, and perhaps a call still at work."""
    started = []

    def start(*call: str) -> int:
        tree = subprocess.Popen(
            [sys.executable, "-c", SERVER_TREE, *call], stdout=subprocess.PIPE, text=True
        )
        started.append(tree)
        assert tree.stdout.readline() == "ready\n"
        return tree.pid

    yield start
    for tree in started:
        with open(f"/proc/{tree.pid}/task/{tree.pid}/children") as children:
            for child in children.read().split():
                os.kill(int(child), signal.SIGKILL)
        tree.kill()
        tree.wait()


def test_a_server_whose_spare_waits_alone_is_idle(server_tree):
    pid = server_tree()
    assert until(lambda: server_idle(pid), 10, step=0.01)


def test_a_server_with_a_call_at_work_is_not_idle(server_tree):
    pid = server_tree("while True: pass")
    assert not until(lambda: server_idle(pid), 0.5, step=0.01)


def test_settle_returns_once_the_calls_after_work_has_ended(server_tree):
    pid = server_tree("time.sleep(0.3)")
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        assert len(children.read().split()) == 2
    Implementation("netc", "node", (), ("/bin",), "/cache", (), server=pid).settle()
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        assert len(children.read().split()) == 1


def test_both_sides_run_the_lists_a_runtime_runs_besides_their_own_network():
    """containerd runs the loopback plugin for every sandbox, whatever the pod network: the
    reference and netc get the same lists but for the pod network itself."""
    text = NETWORK.format(state="/run/x", data="/var/lib/x", prefix=24)
    reference, netc = sandbox_lists(text, REFERENCE), sandbox_lists(text, NETC)
    assert [c.document for c in reference[:-1]] == [c.document for c in netc[:-1]] == [LOOPBACK]
    assert [p["type"] for p in reference[-1].plugins] == ["bridge", "portmap", "bandwidth"]
    assert [p["type"] for p in netc[-1].plugins] == ["netc-cni"]


def test_an_add_whose_loopback_ran_beside_it_is_taken_apart_without_it():
    text = report.text(_attach_suite(lists=LISTS, node_entry="nsenter"))
    # 50 = exec 2 + launch 18 (3 of it the hand-over) + work 30, the loopback's 8 beside them
    assert (
        "100 pods netc-warm        ADD 50.0 = (loopback 8.0 beside) exec 2.0 + launch 18.0 "
        "(hand-over 3.0) + work 30.0 (kernel 10.0: netlink 6.0, programs 4.0); limit 10.0: "
        "work 3.0x, call 4.8x"
    ) in text
    assert (
        "100 pods netc             ADD 150.0 = (loopback 8.0 beside) work 30.0 (kernel 10.0) "
        "+ starting 100.0 + rest"
    ) in text
    assert "an ADD runs the loopback list beside the pod network" in text
    assert "harness: `nsenter --net` adds to each plugin exec" in text
    assert "`ip netns exec`" in report.text(_attach_suite()), "older results name theirs"


def test_a_sandbox_s_lists_are_added_at_once_and_deleted_in_order_as_containerd_does(
    monkeypatch,
):
    """containerd 1.6's go-cni attaches a sandbox's networks in goroutines of their own and
    removes them one by one, loopback first (tests/runtimes checks containerd itself)."""
    text = NETWORK.format(state="/run/x", data="/var/lib/x", prefix=24)
    impl = Implementation("netc", "node", sandbox_lists(text, NETC), ("/bin",), "/cache", ())
    both_running = threading.Barrier(2, timeout=5)  # broken if the calls came one by one
    calls = []

    def add(conflist, who):
        assert who.node_entry == "nsenter", "plugins run in the node's network namespace alone"
        calls.append(("add", conflist.name, who.ifname))
        both_running.wait()
        return {"list": conflist.name}

    monkeypatch.setattr(driver, "add", add)
    monkeypatch.setattr(driver, "delete", lambda c, who: calls.append(("del", c.name, who.ifname)))
    pod = Pod("pod", "c1", 8080)
    assert impl.add(pod) == {"list": "benchnet"}
    impl.delete(pod)
    assert sorted(calls[:2]) == [("add", "benchnet", "eth0"), ("add", "cni-loopback", "lo")]
    assert calls[2:] == [("del", "cni-loopback", "lo"), ("del", "benchnet", "eth0")]


def test_the_plugins_log_lines_give_its_work_and_the_kernels_share_per_command():
    from bench.attach import logged_times

    text = (
        "netc-cni: ADD abc/eth0: ok in 12.0 ms (netlink 5.0 ms, programs 2.0 ms)\n"
        "netc-cni: ADD abd/eth0: ok in 14.0 ms (netlink 7.0 ms, programs 2.0 ms)\n"
        "netc-cni: ADD abe/eth0: failed (11: busy) in 3.0 ms (netlink 0.0 ms, "
        "programs 0.0 ms)\n"
        "netc-cni: waited 2.5 ms for the lock of network pods\n"
    )
    assert logged_times(text) == {
        "add": {"work": 13.0, "netlink": 6.0, "programs": 2.0},
        "del": None,
    }


def test_a_failed_suite_is_named_in_the_report_instead_of_its_figures():
    text = report.text(_results({"membership": {"failed": "RuntimeError('no leader')"}}))
    assert "membership: the suite failed (RuntimeError('no leader')); no figures" in text


def test_the_start_up_report_reads_the_import_profile_the_suite_makes():
    suite = {"repeats": 1, "tools": {}, "importtime": startup.import_profile(1)}
    text = report.text(_results({"startup": suite}))
    assert "by package (self ms, 0.5 ms and up): " in text
    assert "top modules by cumulative ms" in text


def test_an_interrupted_run_keeps_the_suites_it_finished(monkeypatch):
    import bench.__main__ as entry

    def startup_then_interrupted(options, tmp, suites):
        suites["startup"] = {"elapsed_s": 1.0}
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "run_suites", startup_then_interrupted)
    results: dict = {}
    with pytest.raises(KeyboardInterrupt):
        entry.measure(argparse.Namespace(only=["startup", "attach"]), results)
    assert results["suites"] == {"startup": {"elapsed_s": 1.0}}
    assert "load_average_end" in results and "elapsed_s" in results
