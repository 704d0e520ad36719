"""The agent's Prometheus metrics (GET /metrics) -- its own work and its warm server's calls.

The agent counts what it does itself: converges, their failures and
duration, each change it makes to the node and which of them repaired
drift, its peers, its readiness, its warm server's starts.  The CNI calls
are served by the warm server's children, other processes: each child
reports its call in one JSON line on a pipe the agent reads
(runtime/cni/server.py, `Spare.account`), and the agent observes it here.
prometheus_client's multiprocess mode was the other way; it keeps a file
per process that ever counted, and the warm server forks a process per
call -- a file per call, every one of them read at each scrape.  A line on
a pipe costs the call nothing (it is written after the caller has its
answer) and the agent one parse.

A report is data from another process, validated as any input: a command
outside CNI's (an environment is the caller's) is counted as `other`, a
result code outside CNI's, a lock kind outside netc's or a duration that is
not a finite number drops the report.
"""

from __future__ import annotations

import json
import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from compiler.errors import Code

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
LOCKS = ("network", "attachment", "addresses", "hostports")
"""The kinds of lock a call takes (`runtime.files.locked`'s `kind`)."""
CHANGES = ("plugin", "node", "conflist")
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a warm ADD takes some 40 ms, a call that waits for a lock up to 30 s."""
WAIT_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
CONVERGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def result_label(code: int) -> str:
    """A call's result as a label: `ok`, or the CNI error's name (`try_again`, `io_failure`)."""
    return "ok" if code == 0 else Code(code).name.lower()


class Metrics:
    """The agent's metrics, in a registry of their own (one per agent)."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.converges = Counter(
            "netc_agent_converges",
            "Converges the agent ran (at a "
            "change of its configuration or members, and every interval)",
            registry=registry,
        )
        self.converge_failures = Counter(
            "netc_agent_converge_failures",
            "Converges that left the node not ready",
            registry=registry,
        )
        self.converge_seconds = Histogram(
            "netc_agent_converge_duration_seconds",
            "How long a converge took",
            buckets=CONVERGE_BUCKETS,
            registry=registry,
        )
        self.changes = Counter(
            "netc_agent_changes",
            "Changes the agent made to the node: plugin files installed, "
            "operations of the node plan applied, conflists written or removed",
            ["kind"],
            registry=registry,
        )
        self.repairs = Counter(
            "netc_agent_drift_repairs",
            "Changes that put back what someone changed on the node "
            "(made by a converge whose configuration and plan had been applied already)",
            ["kind"],
            registry=registry,
        )
        self.peers = Gauge(
            "netc_agent_peers",
            "Other nodes of the node's cluster that it routes to",
            registry=registry,
        )
        self.ready = Gauge(
            "netc_agent_ready", "1 when the node is converged (/readyz)", registry=registry
        )
        self.server_starts = Counter(
            "netc_agent_warm_server_starts",
            "Starts of the warm server, by result",
            ["result"],
            registry=registry,
        )
        self.calls = Counter(
            "netc_cni_calls",
            "CNI calls the warm server ran, by command and result",
            ["command", "result"],
            registry=registry,
        )
        self.call_seconds = Histogram(
            "netc_cni_call_duration_seconds",
            "How long a warm CNI call took, from its hand-over to its exit status",
            ["command", "result"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.lock_waits = Histogram(
            "netc_cni_lock_wait_seconds",
            "How long a warm CNI call waited for the locks of a "
            "kind (one observation per call and kind it took)",
            ["lock"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.refused = Counter(
            "netc_cni_handovers_refused",
            "Calls the warm server refused to run (the caller "
            "ran them cold, or answered CNI error 11 without python3)",
            registry=registry,
        )
        for kind in CHANGES:  # present from the start: a rate needs a first sample
            self.changes.labels(kind)
            self.repairs.labels(kind)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    def observe_report(self, line: bytes) -> bool:
        """Count one call report of the warm server; False if it is not one (dropped)."""
        try:
            report = json.loads(line)
            if not isinstance(report, dict):
                return False
            if report.get("refused") is True:
                self.refused.inc()
                return True
            command, result, seconds, locks = _call(report)
        except (ValueError, TypeError):
            return False
        self.calls.labels(command, result).inc()
        self.call_seconds.labels(command, result).observe(seconds)
        for kind, waited in locks.items():
            self.lock_waits.labels(kind).observe(waited)
        return True


def _call(report: dict[str, Any]) -> tuple[str, str, float, dict[str, float]]:
    """The command, result, seconds and lock waits of a report; ValueError if malformed."""
    command = report.get("command")
    code, seconds, locks = report.get("code"), report.get("seconds"), report.get("locks")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(locks, dict):
        raise ValueError("not a call report")
    waits = {kind: _seconds(waited) for kind, waited in locks.items()}
    if any(kind not in LOCKS for kind in waits):
        raise ValueError("a lock netc does not take")
    return (
        command if command in COMMANDS else "other",
        result_label(code),
        _seconds(seconds),
        waits,
    )


def _seconds(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{value!r} is no duration")
    return float(value)
