"""netc's etcd client against a real 3-member etcd: the calls membership is built on.

Each test asks from the simulated cluster's client namespace, over its underlay.
"""

from __future__ import annotations

import threading

import pytest

from runtime.etcd import Compacted, EtcdError, Put, Unavailable, absent, unchanged
from runtime.netns import node_namespace
from tests.cluster.sim import SimCluster
from tests.membership.etcd_cluster import EtcdCluster


def test_create_if_absent_lets_exactly_one_claimant_win(etcd):
    client = etcd.client()
    with node_namespace(etcd.sim.client):
        outcomes = [
            client.txn([absent("/t/blocks/1")], [Put("/t/blocks/1", who.encode())])[0]
            for who in ("node-a", "node-b")
        ]
        assert outcomes == [True, False]
        assert client.get("/t/blocks/1").value == b"node-a"


def test_a_key_on_a_lease_goes_when_the_lease_ends_and_the_watch_says_so(etcd):
    client = etcd.client()
    with node_namespace(etcd.sim.client):
        lease, ttl = client.grant(2)
        assert ttl == 2
        _, revision = client.txn([absent("/t/members/a")], [Put("/t/members/a", b"{}", lease)])
        seen = []

        def watch() -> None:
            with node_namespace(etcd.sim.client):
                for events, _ in client.watch("/t/members/", revision + 1):
                    seen.extend(events)
                    if any(e.kind == "DELETE" for e in events):
                        return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        watcher.join(15)
        assert [(e.kind, e.kv.key) for e in seen] == [("DELETE", "/t/members/a")]
        assert client.get("/t/members/a") is None
        assert client.keepalive(lease) == 0


def test_a_key_changed_since_it_was_read_fails_the_comparison(etcd):
    client = etcd.client()
    with node_namespace(etcd.sim.client):
        client.txn([absent("/t/k")], [Put("/t/k", b"1")])
        read = client.get("/t/k")
        client.txn([], [Put("/t/k", b"2")])
        assert client.txn([unchanged(read)], [Put("/t/k", b"3")]) == (False, read.mod_revision + 1)
        assert client.get("/t/k").value == b"2"


def test_a_compacted_start_revision_is_said(etcd):
    client = etcd.client()
    with node_namespace(etcd.sim.client):
        for value in (b"1", b"2", b"3"):
            _, revision = client.txn([], [Put("/t/c", value)])
        client.call("/v3/kv/compaction", {"revision": str(revision)})
        with pytest.raises(Compacted) as compacted:
            next(client.watch("/t/", 1))
        assert compacted.value.revision == revision


def test_calls_go_to_the_members_still_up_and_fail_clearly_without_quorum(etcd):
    client = etcd.client(timeout=2.0)
    with node_namespace(etcd.sim.client):
        etcd.stop(0)
        etcd.wait_healthy()  # the two left elect a leader if the stopped one led: under load,
        # longer than a call's 2 s
        assert client.txn([], [Put("/t/up", b"yes")])[0]
        etcd.stop(1)
        with pytest.raises(Unavailable, match="no etcd endpoint answered"):
            client.txn([], [Put("/t/up", b"maybe")])
        etcd.start(0)
        etcd.wait_healthy()
        # a write that timed out may still be applied once a quorum is back: never assume
        assert client.get("/t/up").value in (b"yes", b"maybe")


def test_a_watch_on_a_member_that_is_down_is_unavailable_not_a_crash(etcd):
    """A follower's thread knows what to do with Unavailable (wait, list again elsewhere);
    a connection refused raised as is ended the thread, and the node followed nobody."""
    client = etcd.client(timeout=2.0)
    with node_namespace(etcd.sim.client):
        etcd.stop(0)  # the client's current endpoint
        with pytest.raises(Unavailable, match="cannot watch"):
            next(client.watch("/t/", 1))


def test_tls_with_certificates_made_here(tmp_path, bin_dir):
    with SimCluster(tmp_path, bin_dir, "vxlan", False, ()) as sim:
        secure = EtcdCluster(sim, tls=True)
        client = secure.client()
        with node_namespace(sim.client):
            assert client.txn([absent("/t/secure")], [Put("/t/secure", b"1")])[0]
            anonymous = type(client)(secure.endpoints, type(client.tls)(secure.tls["ca.crt"]))
            with pytest.raises(EtcdError):
                anonymous.get("/t/secure")
            stranger = type(client)(secure.endpoints)  # the system's CAs: etcd is not trusted
            with pytest.raises(EtcdError):
                stranger.get("/t/secure")
