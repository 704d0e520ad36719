"""Nodes joining and leaving a cluster with etcd membership: how long until every peer knows.

Two parts, both against a real 3-member etcd (Debian's etcd-server) on the
underlay of a simulated cluster (tests/membership/agents.py, tests/cluster/
sim.py: namespaces the run creates and removes):

* **agents** -- at each cluster size, `size - 1` nodes run their agent; a
  further node joins, then leaves (`netc leave`), again and again.  The
  times, from routes seen appearing and vanishing in every peer's kernel
  (a netlink listener in each peer's namespace, so no polling):
    join       its agent's start until every peer has a route to its pods
               (the agent's start-up, its claim, the peers' converges)
    claim      its claim seen in etcd (the bench's own watch) until then
    leave      `netc leave` started until every peer's route is gone
    crash      its agent killed until every peer's route is gone: the lease
               runs out (its TTL), then etcd tells the watchers
  and the memory of the agents' processes.
* **watchers** -- a thousand membership sources in this process, each a
  member with its claim and its watch (what an agent runs, without the
  kernel work), and one more joining: how long until every one of them has
  it, and how many revisions of the store a join costs.

Timings in milliseconds, as medians and p99s (bench.stats); on a 2-core
machine the agents share the cores with everything else, which is part of
what is measured.
"""

from __future__ import annotations

import _socket
import contextlib
import ipaddress
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.stats import summary
from compiler.ir import Cluster, Membership, Routing
from runtime.etcd import Etcd
from runtime.membership.etcd import EtcdSource, keys
from runtime.netlink.rtnl import RTM_NEWROUTE, _route
from runtime.netlink.wire import messages
from runtime.netns import node_namespace
from tests.cluster.sim import SimCluster, SimNode
from tests.membership.agents import AgentCluster, until
from tests.membership.etcd_cluster import EtcdCluster

RTMGRP_IPV4_ROUTE = 0x40
RTM_DELROUTE = RTM_NEWROUTE + 1
JOINS = 20
CRASHES = 3
LEASE = 3
ELECTION_MS = 5000
"""The watchers' etcd: the thousand followers and its three members share two CPUs, and a
member starved past the tests' 500 ms calls an election (etcd's own default is 1000 ms;
its tuning guide raises it for loaded machines)."""


class RouteEvents:
    """Every IPv4 route added or deleted in some namespaces, with when (a thread each)."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[float, str, str, str]] = queue.Queue()
        self.sockets = []
        for name, netns in namespaces.items():
            with node_namespace(netns):
                sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, 0)
                sock.bind((0, RTMGRP_IPV4_ROUTE))
            self.sockets.append(sock)
            threading.Thread(target=self._listen, args=(name, sock), daemon=True).start()
        self.seen: list[tuple[float, str, str, str]] = []

    def _listen(self, name: str, sock: _socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = sock.recv(1 << 20)
                now = time.monotonic()
                for message in messages(data):
                    if message.kind in (RTM_NEWROUTE, RTM_DELROUTE):
                        route = _route(message.body, 4)
                        if route is not None:
                            kind = "new" if message.kind == RTM_NEWROUTE else "del"
                            self.events.put((now, name, kind, route.dst))

    def when_all(
        self, names: set[str], kind: str, dst: str, after: float, timeout: float = 60
    ) -> float | None:
        """When the last of `names` saw `kind` of a route to `dst` after `after` (or None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = {n: t for t, n, k, d in self.seen if k == kind and d == dst and t >= after}
            if names <= set(done):
                return max(done[n] for n in names)
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.events.get(timeout=0.1))
        return None

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


class ClaimEvents:
    """The bench's own watch on the members in etcd: when each member's key was put."""

    def __init__(self, etcd: Etcd, prefix: str, netns: str) -> None:
        self.puts: dict[str, float] = {}
        self.lock = threading.Lock()
        with node_namespace(netns):
            listing = etcd.under(prefix)
            threading.Thread(
                target=self._watch, args=(etcd, prefix, listing.revision + 1), daemon=True
            ).start()

    def _watch(self, etcd: Etcd, prefix: str, revision: int) -> None:
        with contextlib.suppress(Exception):
            for events, _ in etcd.watch(prefix, revision):
                now = time.monotonic()
                with self.lock:
                    for event in events:
                        if event.kind == "PUT":
                            self.puts[event.kv.key.removeprefix(prefix)] = now

    def put_after(self, name: str, after: float) -> float | None:
        with self.lock:
            moment = self.puts.get(name)
        return moment if moment is not None and moment >= after else None


def _node(index: int) -> SimNode:
    return SimNode(f"node-{index:02d}", "a", 20 + index, 0)


def agents(tmp: Path, size: int, joins: int = JOINS, crashes: int = CRASHES) -> dict[str, Any]:
    """`size - 1` agents, and one more node joining and leaving `joins` times, crashing
    `crashes` times."""
    with AgentCluster(tmp / f"agents-{size}", tmp / "no-bin-dir", "vxlan", lease=LEASE) as sim:
        standing = [_node(i) for i in range(1, size)]
        for node in standing:
            sim.start_agent(node)
        for node in standing:
            if not sim.wait_ready(node.name, timeout=120):
                raise RuntimeError(f"agent of {node.name} not ready:\n{sim.log(node.name)}")
        peers = {n.name for n in standing}
        routes = RouteEvents({n.name: sim.ns(n) for n in standing})
        claims = ClaimEvents(
            sim.etcd.client(), keys(sim.compiled(standing[0]).clusters[0])[1], sim.client
        )
        newcomer = _node(size)
        times: dict[str, list[float]] = {"join": [], "claim": [], "leave": [], "crash": []}
        memory = 0
        try:
            for attempt in range(joins + crashes):
                started = time.monotonic()
                sim.start_agent(newcomer)
                if not sim.wait_ready(newcomer.name, attempt + 1, 60):
                    raise RuntimeError(f"newcomer not ready:\n{sim.log(newcomer.name)}")
                subnet = f"10.244.{sim.block(newcomer.name)}.0/24"
                routed = routes.when_all(peers, "new", subnet, started)
                claimed = claims.put_after(newcomer.name, started)
                if routed is None or claimed is None:
                    raise RuntimeError(f"join {attempt}: no route on every peer")
                times["join"].append(routed - started)
                times["claim"].append(routed - claimed)
                memory = _rss_kib(sim.agents[newcomer.name].pid)
                times["crash" if attempt >= joins else "leave"].append(
                    _crash(sim, newcomer, routes, peers, subnet)
                    if attempt >= joins
                    else _leave(sim, newcomer, routes, peers, subnet)
                )
        finally:
            routes.close()
        return {
            "size": size,
            "lease_s": LEASE,
            "agent_rss_kib": memory,
            **{step: summary(samples) for step, samples in times.items()},
        }


def _leave(
    sim: AgentCluster, node: SimNode, routes: RouteEvents, peers: set[str], subnet: str
) -> float:
    """A graceful leave: the agent stopped as the kubelet stops it, then `netc leave`."""
    sim.stop_agent(node.name)
    started = time.monotonic()
    done = sim.leave(node)
    if done.returncode != 0:
        raise RuntimeError(f"netc leave failed: {done.stderr}")
    gone = routes.when_all(peers, "del", subnet, started)
    if gone is None:
        raise RuntimeError("a left node's route stayed")
    return gone - started


def _crash(
    sim: AgentCluster, node: SimNode, routes: RouteEvents, peers: set[str], subnet: str
) -> float:
    """The agent killed: its routes go one lease later (and its block with them)."""
    started = time.monotonic()
    sim.stop_agent(node.name, signal.SIGKILL)
    gone = routes.when_all(peers, "del", subnet, started, timeout=10 * LEASE)
    if gone is None:
        raise RuntimeError("a crashed node's route stayed")
    for path in sim.dirs(node)["memory"].glob("*.json"):  # each sample joins afresh
        path.unlink()
    return gone - started


def _rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (the agent, its warm server not included)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def watchers(tmp: Path, count: int) -> dict[str, Any]:
    """`count` members following one etcd in this process, and one joining: until all know."""
    with SimCluster(tmp / "watchers", tmp / "no-bin-dir", "vxlan", False, ()) as sim:
        etcd = EtcdCluster(sim, election_ms=ELECTION_MS)
        cluster = Cluster(
            "sim",
            (ipaddress.ip_network("10.0.0.0/8"),),
            (24,),
            (),
            Routing("vxlan"),
            membership=Membership("etcd", tuple(etcd.endpoints), "/netc", 60),
        )
        stamps: dict[str, list[float]] = {}
        sources: list[EtcdSource] = []
        with _watching(sim, cluster, tmp, count, stamps=stamps, sources=sources):
            client = etcd.client()
            with node_namespace(sim.client):
                before = client.under(keys(cluster)[0]).revision
            joined = time.monotonic()
            newcomer = _source(cluster, "joiner", count, tmp, {})
            with node_namespace(sim.client):
                newcomer.start()
            if not _all_become(sources, lambda s: _knows(s, "joiner"), 60):
                raise RuntimeError("not every watcher saw the join")
            seen = [min(t for t in stamps[s.node] if t >= joined) - joined for s in sources]
            with node_namespace(sim.client):
                after = client.under(keys(cluster)[0]).revision
            newcomer.stop()
        return {
            "watchers": count,
            "all_know": round(max(seen) * 1000, 1),
            "know": summary(seen),
            "revisions_per_join": after - before,
            "process_rss_kib": _rss_kib(os.getpid()),
        }


@contextlib.contextmanager
def _watching(
    sim: SimCluster,
    cluster: Cluster,
    tmp: Path,
    count: int,
    *,
    stamps: dict[str, list[float]],
    sources: list[EtcdSource],
) -> Iterator[None]:
    """`count` sources claimed and listing, started fifty at a time; stopped after."""
    try:
        for first in range(0, count, 50):
            batch = [
                _source(cluster, f"w{i:04d}", i, tmp, stamps)
                for i in range(first, min(first + 50, count))
            ]
            with node_namespace(sim.client):
                for source in batch:
                    source.start()
            sources += batch
            if not _all_become(batch, lambda s: s.view().me is not None, 120):
                raise RuntimeError("watchers could not claim their blocks")
        yield
    finally:
        for source in sources:
            source.stop()


def _all_become(
    sources: list[EtcdSource], condition: Callable[[EtcdSource], bool], timeout: float
) -> bool:
    """Whether every source meets `condition` within `timeout` seconds.

    A view costs a pass over the members, so a source is looked at until it
    meets the condition and no more, twice a second: the watchers share the
    harness's CPU and its interpreter lock with this loop, and the times
    reported come from their own stamps, not from here.
    """
    pending = list(sources)

    def none_pending() -> bool:
        pending[:] = [source for source in pending if not condition(source)]
        return not pending

    return until(none_pending, timeout, step=0.5)


def _knows(source: EtcdSource, name: str) -> bool:
    members = source.view().members
    return members is not None and members.get(name) is not None


class _Stamped(threading.Event):
    """An event that remembers when it was set: when its source's view changed."""

    def __init__(self, moments: list[float]) -> None:
        super().__init__()
        self.moments = moments

    def set(self) -> None:
        self.moments.append(time.monotonic())
        super().set()


def _source(
    cluster: Cluster, name: str, index: int, tmp: Path, stamps: dict[str, list[float]]
) -> EtcdSource:
    address = ipaddress.ip_interface(f"198.19.{index // 250}.{index % 250 + 1}/16")
    stamps[name] = []
    return EtcdSource(
        cluster,
        name,
        (address,),
        str(tmp / "memory" / name),
        lambda: False,
        changed=_Stamped(stamps[name]),
    )


def run(tmp: Path, sizes: list[int], count: int) -> dict[str, Any]:
    """Both parts; `sizes` of clusters with agents, `count` watchers."""
    if subprocess.run(["which", "etcd"], capture_output=True, check=False).returncode != 0:
        raise RuntimeError("the membership suite needs etcd (Debian's etcd-server)")
    measured: dict[str, Any] = {"agents": [agents(tmp, size) for size in sizes]}
    try:
        measured["watchers"] = watchers(tmp, count)
    except RuntimeError as error:  # the agents' figures stand without them
        measured["watchers"] = {"watchers": count, "failed": str(error)}
    return measured
