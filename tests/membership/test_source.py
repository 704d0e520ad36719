"""The etcd source against a real 3-member etcd: claims, the members each node sees, restarts,
leaves, crashes, a full pod CIDR, outages.  No kernel work: what each node would route comes
from the members its source lists (tests/membership/test_agents.py routes real packets)."""

from __future__ import annotations

import base64
import ipaddress
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler.ir import Cluster, Membership, Routing
from compiler.membership import Member
from runtime.membership.etcd import EtcdSource, Memory, leave
from runtime.membership.watched import Watched, jittered
from runtime.netns import node_namespace

LEASE = 2


def _cluster(etcd, pod_cidr: str = "10.244.0.0/16", lease: int = LEASE) -> Cluster:
    return Cluster(
        "sim",
        (ipaddress.ip_network(pod_cidr),),
        (24,),
        (),
        Routing("vxlan"),
        membership=Membership("etcd", tuple(etcd.endpoints), "/netc", lease),
    )


class Nodes:
    """Sources for nodes named node-N, each with its own memory directory."""

    def __init__(self, etcd, tmp: Path, cluster: Cluster) -> None:
        self.etcd, self.tmp, self.cluster = etcd, tmp, cluster
        self.sources: dict[str, EtcdSource] = {}
        self.pods: set[str] = set()
        """Nodes whose pods hold addresses."""

    def start(self, *names: str) -> list[EtcdSource]:
        started = []
        for name in names:
            number = int(name.rsplit("-", 1)[1])
            address = ipaddress.ip_interface(f"198.18.10.{10 + number}/24")
            source = EtcdSource(
                self.cluster,
                name,
                (address,),
                str(self.tmp / name),
                lambda name=name: name in self.pods,
            )
            with node_namespace(self.etcd.sim.client):
                source.start()
            self.sources[name] = source
            started.append(source)
        return started

    def stop(self, name: str) -> None:
        self.sources.pop(name).stop()

    def stop_all(self) -> None:
        for name in list(self.sources):
            self.stop(name)

    def blocks(self) -> dict[str, int | None]:
        return {n: s.view().me.block if s.view().me else None for n, s in self.sources.items()}

    def seen_by(self, name: str) -> set[str]:
        members = self.sources[name].view().members
        return {m.name for m in members.members} if members else set()


@pytest.fixture
def nodes(etcd, tmp_path):
    found = Nodes(etcd, tmp_path, _cluster(etcd))
    yield found
    found.stop_all()


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_three_nodes_claim_three_blocks_and_each_sees_all(nodes):
    nodes.start("node-1", "node-2", "node-3")
    everyone = {"node-1", "node-2", "node-3"}
    assert _until(lambda: all(nodes.seen_by(n) == everyone for n in everyone))
    blocks = nodes.blocks()
    assert len(set(blocks.values())) == 3 and None not in blocks.values(), blocks
    member = nodes.sources["node-1"].view().members.get("node-2")
    assert member == Member(
        "node-2", blocks["node-2"], (ipaddress.ip_interface("198.18.10.12/24"),)
    )


@pytest.mark.parametrize("round_", [1, 2])
def test_ten_nodes_starting_at_once_claim_ten_blocks(nodes, round_):
    names = [f"node-{i}" for i in range(1, 11)]
    nodes.start(*names)
    assert _until(lambda: all(nodes.seen_by(n) == set(names) for n in names), 30)
    blocks = list(nodes.blocks().values())
    assert len(set(blocks)) == 10 and None not in blocks, blocks


def test_a_restarted_agent_takes_up_its_block_and_lease(nodes):
    (first,) = nodes.start("node-1")
    nodes.start("node-2")
    assert _until(lambda: nodes.seen_by("node-2") == {"node-1", "node-2"})
    before = first.view()
    nodes.stop("node-1")
    (again,) = nodes.start("node-1")
    assert _until(lambda: again.view().me is not None)
    assert (again.view().me.block, again.view().lease) == (before.me.block, before.lease)
    assert nodes.seen_by("node-2") == {"node-1", "node-2"}


def test_a_node_that_lost_its_lease_and_memory_reclaims_nothing_new_but_its_block(nodes, etcd):
    """A reboot after the lease ran out: the block is remembered on disk and still free."""
    (first,) = nodes.start("node-1")
    nodes.start("node-2", "node-3")
    assert _until(lambda: nodes.seen_by("node-3") == {"node-1", "node-2", "node-3"})
    block = first.view().me.block
    nodes.stop("node-1")
    assert _until(lambda: "node-1" not in nodes.seen_by("node-2"), 3 * LEASE + 5)
    nodes.start("node-1")
    assert _until(lambda: nodes.seen_by("node-2") == {"node-1", "node-2", "node-3"})
    assert _until(lambda: nodes.blocks()["node-1"] is not None)  # its own view, its own pace
    assert nodes.blocks()["node-1"] == block


def test_leave_drops_the_node_everywhere_at_once_and_a_crash_after_its_lease(nodes, etcd):
    nodes.start("node-1", "node-2", "node-3")
    everyone = {"node-1", "node-2", "node-3"}
    assert _until(lambda: nodes.seen_by("node-1") == everyone)
    nodes.stop("node-2")
    with node_namespace(etcd.sim.client):
        said = leave(nodes.cluster, "node-2", str(nodes.tmp / "node-2"))
    assert said.startswith("node node-2 left cluster sim: block ")
    assert _until(lambda: nodes.seen_by("node-1") == {"node-1", "node-3"}, LEASE / 2)
    nodes.stop("node-3")  # a crash: no leave
    assert nodes.seen_by("node-1") == {"node-1", "node-3"}
    assert _until(lambda: nodes.seen_by("node-1") == {"node-1"}, 3 * LEASE + 5)


def test_a_full_pod_cidr_is_a_condition_and_the_node_gets_no_block(etcd, tmp_path):
    nodes = Nodes(etcd, tmp_path, _cluster(etcd, "10.244.0.0/23"))  # room for two
    try:
        nodes.start("node-1", "node-2")
        assert _until(lambda: None not in nodes.blocks().values())
        (third,) = nodes.start("node-3")
        assert _until(lambda: "no free block" in third.view().condition)
        assert third.view().me is None
        assert "the 2 blocks of pod CIDR 10.244.0.0/23 are all held" in third.view().condition
        assert _until(lambda: nodes.seen_by("node-3") == {"node-1", "node-2"})
    finally:
        nodes.stop_all()


def test_a_block_taken_while_away_is_never_traded_for_another_while_pods_hold_addresses(
    nodes, etcd
):
    (first,) = nodes.start("node-1")
    assert _until(lambda: first.view().me is not None)
    nodes.stop("node-1")
    with node_namespace(etcd.sim.client):
        leave(nodes.cluster, "node-1", str(nodes.tmp / "elsewhere"))  # its memory stays
    block = first.view().me.block
    Memory(str(nodes.tmp / "node-2"), "sim", "node-2").save(block, 0)  # it held it once
    (thief,) = nodes.start("node-2")
    assert _until(lambda: thief.view().me is not None)
    assert thief.view().me.block == block
    nodes.pods.add("node-1")
    (back,) = nodes.start("node-1")
    assert _until(lambda: "does not renumber a node that has pods" in back.view().condition)
    assert back.view().me is None
    nodes.stop("node-1")
    nodes.pods.clear()
    (fresh,) = nodes.start("node-1")
    assert _until(lambda: fresh.view().me is not None)
    assert fresh.view().me.block != thief.view().me.block


def test_an_outage_longer_than_the_lease_removes_nobody_and_renumbers_nobody(nodes, etcd):
    nodes.start("node-1", "node-2", "node-3")
    everyone = {"node-1", "node-2", "node-3"}
    assert _until(lambda: all(nodes.seen_by(n) == everyone for n in everyone))
    blocks = nodes.blocks()
    etcd.stop(0)
    etcd.stop(1)  # no quorum: no write, no lease renewed, no lease expired
    assert _until(
        lambda: all("etcd is unavailable" in s.view().condition for s in nodes.sources.values()),
        3 * LEASE + 10,
    )
    time.sleep(3 * LEASE)
    assert all(nodes.seen_by(n) == everyone for n in everyone)
    etcd.start(0)
    etcd.start(1)
    etcd.wait_healthy()
    assert _until(lambda: all(s.view().condition == "" for s in nodes.sources.values()), 30)
    time.sleep(2 * LEASE)
    assert all(nodes.seen_by(n) == everyone for n in everyone)
    assert nodes.blocks() == blocks


def test_a_member_gone_right_after_an_outage_is_kept_a_lease_and_comes_back(nodes, etcd):
    """A lease that lapsed while etcd was away is not a leave: peers wait one lease after
    etcd answers again, and the node claims its block back meanwhile."""
    nodes.start("node-1", "node-2", "node-3")
    everyone = {"node-1", "node-2", "node-3"}
    assert _until(lambda: all(nodes.seen_by(n) == everyone for n in everyone))
    block = nodes.blocks()["node-3"]
    nodes.stop("node-2")  # it will not come back: dropped after the grace
    etcd.stop(0)
    etcd.stop(1)
    assert _until(
        lambda: "etcd is unavailable" in nodes.sources["node-1"].view().condition, 3 * LEASE + 10
    )
    etcd.start(0)
    etcd.start(1)
    etcd.wait_healthy()
    with node_namespace(etcd.sim.client):
        client = etcd.client()
        for name in ("node-2", "node-3"):  # as a waking leader revoking their leases would
            client.call("/v3/kv/deleterange", {"key": _b64(f"/netc/sim/members/{name}")})
    assert nodes.seen_by("node-1") == everyone, "dropped within the grace"
    assert _until(
        lambda: (
            nodes.blocks()["node-3"] == block and nodes.sources["node-3"].view().condition == ""
        ),
        30,
    )
    assert _until(lambda: nodes.seen_by("node-1") == {"node-1", "node-3"}, LEASE + 5)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_waits_after_an_outage_are_spread_so_that_nodes_do_not_come_back_as_one():
    waits = [jittered(4.0) for _ in range(200)]
    assert all(2.0 <= wait <= 4.0 for wait in waits)
    assert max(waits) - min(waits) > 1.0


def test_a_defect_in_a_round_is_a_condition_and_the_follower_goes_on():
    """Its thread is the node's only way to hear of peers: a bug must not end it unseen."""

    class Broken(Watched):
        TITLE = "the test's store"
        rounds = 0

        def _round(self) -> None:
            self.rounds += 1
            raise KeyError("revision")

    source = Broken(None, "")
    follower = threading.Thread(target=source._follow, daemon=True)
    follower.start()
    try:
        assert _until(lambda: source.rounds >= 2, 10)
        assert "internal error following the test's store: KeyError" in source.view().condition
        assert follower.is_alive()
    finally:
        source.stop()
