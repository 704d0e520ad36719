"""The etcd source: each node claims a block under a lease, and every node watches the others.

Keys, below the cluster's `prefix` (default `/netc`):

    PREFIX/CLUSTER/members/NODE   the member's record (compiler.membership): its block
                                  and underlay addresses
    PREFIX/CLUSTER/blocks/N       the name of the node holding block N

both on the node's lease.  A claim is one transaction that creates both
keys only if neither exists, so a node never holds two blocks and a block
never two nodes; ten agents starting at once get ten blocks.  The lease is
kept alive every third of its TTL.  An agent that stops without leaving
lets it run: restarted within the lease it takes up the same keys, and a
node that crashed leaves every peer one lease later.  `leave` ends the lease
at once, after marking the record `leaving`.

The same block comes back after a restart or a reboot: the node's block
and lease are remembered in `MEMORY_DIR/CLUSTER.json` (on a disk that
survives reboots), and its record is found by name.  A remembered block
someone else took while this node was away is never traded for a new one
while pods hold addresses from it: that is a condition to report, not a
renumbering (the flannel failure of a lapsed 24 h lease).

Members are listed at a revision and watched from the next one; a watch
that breaks or whose revision was compacted lists again, and the listing
replaces what was known.  While etcd cannot answer, the last members stay
(`condition` says why) and nothing is removed.  etcd extends every lease
when a new leader is elected, but a member that was cut off during an
outage may need a moment after it to renew: a member that disappears within
one lease period of etcd answering again is kept that long (`lingering`),
unless it said it was leaving.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from compiler.cluster import block_count
from compiler.errors import NetcError
from compiler.identifiers import is_node_name
from compiler.ir import Cluster, IPInterface
from compiler.membership import BadRecord, Member, Members, choose_block, read_member
from runtime.etcd import (
    Compacted,
    Delete,
    Etcd,
    EtcdError,
    Event,
    KeyValue,
    Put,
    Tls,
    Unavailable,
    absent,
    unchanged,
)
from runtime.files import read_text, remove, write_atomically
from runtime.membership import HoldsAddresses
from runtime.membership.watched import Watched, jittered, log

CLAIM_ATTEMPTS = 20
"""Transactions a claim tries when other nodes keep taking the block it chose."""
TICK = 0.5
"""Seconds between looks at the lease and the lingering members."""


class ClaimRefused(NetcError):
    """No block for the node now: the pod CIDRs are full, or its block is another node's."""


def keys(cluster: Cluster) -> tuple[str, str, str]:
    """The cluster's key prefix, its members' prefix and its blocks' prefix."""
    base = f"{cluster.membership.prefix.rstrip('/')}/{cluster.name}/"
    return base, base + "members/", base + "blocks/"


def client(cluster: Cluster, timeout: float | None = None) -> Etcd:
    """A client of the cluster's etcd, with its certificates."""
    settings = cluster.membership
    tls = Tls(settings.ca_file, settings.cert_file, settings.key_file)
    return (
        Etcd(settings.endpoints, tls) if timeout is None else Etcd(settings.endpoints, tls, timeout)
    )


class Memory:
    """What a node remembers of its claim across restarts and reboots: its block and lease."""

    def __init__(self, directory: str, cluster: str, node: str) -> None:
        self.path = os.path.join(directory, f"{cluster}.json")
        self.node = node

    def load(self) -> tuple[int | None, int | None]:
        """The block and lease this node held last (None, None when it remembers nothing)."""
        try:
            document = json.loads(read_text(self.path) or "null")
        except ValueError:
            return None, None
        if not isinstance(document, dict) or document.get("node") != self.node:
            return None, None
        block, lease = document.get("block"), document.get("lease")
        return (
            block if isinstance(block, int) else None,
            lease if isinstance(lease, int) else None,
        )

    def save(self, block: int, lease: int) -> None:
        """Remember a claim (fsynced: it must survive the reboot it is for)."""
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        document = {"node": self.node, "block": block, "lease": lease}
        write_atomically(self.path, json.dumps(document).encode(), durable=True)

    def forget(self) -> None:
        """The node left: nothing to take up again."""
        remove(self.path)


class EtcdSource(Watched):
    """A node's membership of an etcd cluster: its claim, kept alive, and the members watched."""

    SOURCE = TITLE = "etcd"
    AGAIN = (Compacted,)
    UNAVAILABLE = (Unavailable,)
    REFUSED = (EtcdError,)

    def __init__(
        self,
        cluster: Cluster,
        node: str,
        addresses: tuple[IPInterface, ...],
        memory_dir: str,
        holds_addresses: HoldsAddresses,
        *,
        changed: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(changed, "joining: claiming a block")
        self.cluster = cluster
        self.node = node
        self.addresses = addresses
        self.seconds = self.ttl = cluster.membership.lease
        self.etcd = client(cluster)
        self.base, self.members_prefix, self.blocks_prefix = keys(cluster)
        self.memory = Memory(memory_dir, cluster.name, node)
        self.holds_addresses = holds_addresses
        self.clock = clock
        self._lingering: dict[str, float] = {}
        """Members gone from etcd but kept until this time (the clock's), after an outage."""
        self._need_claim = True
        self._back_since: float | None = None
        self._threads = [
            threading.Thread(target=self._follow, name="membership", daemon=True),
            threading.Thread(target=self._tick, name="lease", daemon=True),
        ]

    def start(self) -> None:
        """Claim, list and watch in one thread; keep the lease alive in another."""
        for thread in self._threads:
            thread.start()

    # following the members

    def _round(self) -> None:
        refused = self._claim_needed() and not self._claim()
        listing = self.etcd.under(self.members_prefix)
        self._replace(dict(self._records(listing.kvs)), listing.revision)
        if self._claim_needed() and not refused:
            return
        # A refused claim is tried again at the next change: a node that
        # leaves frees a block.
        for events, revision in self.etcd.watch(self.members_prefix, listing.revision + 1):
            self._apply(events, revision)
            if self._claim_needed() or self._stopping.is_set():
                break

    def _claim_needed(self) -> bool:
        with self._lock:
            return self._need_claim

    def _listing_done(self, listed: Mapping[str, Member]) -> None:
        if self._me is not None and self.node not in listed:
            self._lost()

    def _apply(self, events: Iterable[Event], revision: int) -> None:
        with self._lock:
            self._available()
            for event in events:
                name = event.kv.key.removeprefix(self.members_prefix)
                if event.kind == "DELETE":
                    if name == self.node:
                        self._lost()
                    elif name in self._members:
                        self._gone(name)
                    continue
                member = self._record(name, event.kv.value)
                if member is not None:
                    self._present(member)
            self._revision = revision
        self.changed.set()

    def _records(self, kvs: Iterable[KeyValue]) -> Iterable[tuple[str, Member]]:
        for kv in kvs:
            name = kv.key.removeprefix(self.members_prefix)
            member = self._record(name, kv.value)
            if member is not None:
                yield name, member

    def _record(self, name: str, value: bytes) -> Member | None:
        """A member's record, or None (logged) when it is not a valid one of this cluster."""
        try:
            return read_member(self.cluster, name, value)
        except BadRecord as error:
            log(f"ignoring the record of member {name!r} in etcd: {error}")
            return None

    def _present(self, member: Member) -> None:
        super()._present(member)
        self._lingering.pop(member.name, None)
        if member.name == self.node and self._me is not None:
            self._me = member

    def _gone(self, name: str) -> None:
        """A member left etcd: dropped now, or kept one lease after an outage ended."""
        member = self._members[name]
        now = self.clock()
        self._gone_at.setdefault(name, time.time())
        if (
            not member.leaving
            and self._back_since is not None
            and now < self._back_since + self.seconds
        ):
            self._lingering.setdefault(name, self._back_since + self.seconds)
            return
        super()._gone(name)
        self._lingering.pop(name, None)

    def _lost(self) -> None:
        """The node's own record is gone (its lease ran out): claim again, the same block."""
        self._need_claim = True
        self._condition = "this node's lease ran out: claiming its block again"

    def _back(self) -> None:
        self._back_since = self.clock()

    def _standing_condition(self) -> str:
        return self._condition if self._need_claim else ""

    # the lease and the lingering members

    def _tick(self) -> None:
        due = 0.0
        while not self._stopping.wait(TICK):
            now = self.clock()
            if self._lease is not None and now >= due:
                due = now + self._keep_alive()
            self._expire(now)

    def _keep_alive(self) -> float:
        """Renew the lease; seconds until the next renewal."""
        lease = self._lease
        assert lease is not None
        try:
            left = self.etcd.keepalive(lease)
        except Unavailable as error:
            self._unavailable_now(str(error))
            return jittered(1.0)
        except EtcdError as error:
            self._set_condition(str(error))
            return jittered(1.0)
        if left <= 0:
            with self._lock:
                if self._lease == lease:
                    self._lost()
            self.changed.set()
        return max(self.seconds / 3, TICK)

    def _expire(self, now: float) -> None:
        with self._lock:
            ended = [name for name, until in self._lingering.items() if now >= until]
            for name in ended:
                self._members.pop(name, None)
                del self._lingering[name]
                self._gone_at.pop(name, None)
        if ended:
            log(
                f"members gone since etcd came back, after a lease's grace: "
                f"{', '.join(sorted(ended))}"
            )
            self.changed.set()

    # claiming

    def _claim(self) -> bool:
        """Hold a block under a live lease and publish this node's record; False when refused.

        The reason of a refusal is the source's condition.
        """
        try:
            for _ in range(CLAIM_ATTEMPTS):
                if self._try_claim():
                    return True
            raise ClaimRefused(
                f"could not claim a block in {CLAIM_ATTEMPTS} attempts: other "
                "nodes kept taking the one chosen"
            )
        except ClaimRefused as error:
            self._set_condition(str(error))
            return False

    def _try_claim(self) -> bool:
        listing = self.etcd.under(self.base)
        records = {
            kv.key.removeprefix(self.members_prefix): kv
            for kv in listing.kvs
            if kv.key.startswith(self.members_prefix)
        }
        holders = _holders(listing.kvs, self.blocks_prefix)
        remembered, old_lease = self.memory.load()
        mine = records.get(self.node)
        if mine is not None and self._adopt(mine, old_lease):
            return True
        member_key = self.members_prefix + self.node
        current = self._record(self.node, mine.value) if mine is not None else None
        if current is not None and current.block is not None:
            block: int | None = current.block
        else:
            block = self._choose(holders, remembered)
        assert block is not None
        block_key = f"{self.blocks_prefix}{block}"
        holder = holders.get(block)
        if holder is not None and holder[1] != self.node:
            raise ClaimRefused(f"block {block} of this node is held by node {holder[1]}")
        lease = self._live_lease()
        record = Member(self.node, block, self.addresses)
        compare = [
            unchanged(mine) if mine is not None else absent(member_key),
            unchanged(holder[0]) if holder is not None else absent(block_key),
        ]
        done, _ = self.etcd.txn(
            compare,
            [Put(member_key, record.record(), lease), Put(block_key, self.node.encode(), lease)],
        )
        if done:
            self._claimed(record, lease)
        return done

    def _adopt(self, mine: KeyValue, old_lease: int | None) -> bool:
        """Take up the record of an earlier life of this agent, if its lease still runs."""
        member = self._record(self.node, mine.value)
        if (
            member is None
            or mine.lease == 0
            or mine.lease != (self._lease or old_lease)
            or member.addresses != self.addresses
        ):
            return False
        if self.etcd.keepalive(mine.lease) <= 0:
            return False
        self._claimed(member, mine.lease)
        return True

    def _choose(self, holders: Mapping[int, tuple[KeyValue, str]], remembered: int | None) -> int:
        taken = {block: name for block, (_, name) in holders.items()}
        block = choose_block(self.cluster, self.node, taken, remembered)
        if remembered is not None and block != remembered and self.holds_addresses():
            raise ClaimRefused(
                f"block {remembered}, which this node's pods have addresses from, is held by "
                f"node {taken.get(remembered)}: netc does not renumber a node that has pods "
                "(drain it and remove its pods, or `netc leave` the other node)"
            )
        if block is None:
            raise ClaimRefused(
                f"no free block: the {block_count(self.cluster)} blocks of pod CIDR "
                f"{', '.join(map(str, self.cluster.pod_cidrs))} are all held or pinned; a "
                "larger pod-cidr or a smaller node-block makes room, or `netc leave` nodes gone"
            )
        return block

    def _live_lease(self) -> int:
        if self._lease is not None and self.etcd.keepalive(self._lease) > 0:
            return self._lease
        lease, _ = self.etcd.grant(self.seconds)
        return lease

    def _claimed(self, member: Member, lease: int) -> None:
        assert member.block is not None
        self.memory.save(member.block, lease)
        with self._lock:
            self._lease, self._me, self._need_claim = lease, member, False
            self._members[member.name] = member
            self._condition = ""
        log(
            f"holding block {member.block} of cluster {self.cluster.name} (lease {lease:x}, "
            f"{self.seconds} s)"
        )
        self.changed.set()


def _holders(kvs: Iterable[KeyValue], prefix: str) -> dict[int, tuple[KeyValue, str]]:
    """Each block key's number, key and holder; keys that are not a number and a name ignored."""
    found = {}
    for kv in kvs:
        number = kv.key.removeprefix(prefix)
        name = kv.value.decode(errors="replace")
        if kv.key.startswith(prefix) and number.isdigit() and is_node_name(name):
            found[int(number)] = (kv, name)
    return found


def members_now(cluster: Cluster) -> Members:
    """The cluster's members as etcd lists them now, records that are not valid left out."""
    _, prefix, _ = keys(cluster)
    listing = client(cluster).under(prefix)
    found = []
    for kv in listing.kvs:
        try:
            found.append(read_member(cluster, kv.key.removeprefix(prefix), kv.value))
        except BadRecord as error:
            log(f"ignoring the record of {kv.key!r}: {error}")
    return Members.of(listing.revision, found)


def leave(cluster: Cluster, node: str, memory_dir: str) -> str:
    """End a node's membership now: its record marked leaving, then its lease revoked.

    Peers drop its routes at once.  What happened, in one line.
    """
    etcd = client(cluster)
    _, members, _ = keys(cluster)
    mine = etcd.get(members + node)
    Memory(memory_dir, cluster.name, node).forget()
    if mine is None:
        return f"node {node} holds no block of cluster {cluster.name}"
    try:
        member = read_member(cluster, node, mine.value)
    except BadRecord:
        member = None
    if member is not None and mine.lease:
        leaving = Member(member.name, member.block, member.addresses, leaving=True)
        etcd.txn([unchanged(mine)], [Put(mine.key, leaving.record(), mine.lease)])
    if mine.lease:
        etcd.revoke(mine.lease)  # and with it both keys
    elif member is not None:
        etcd.txn([unchanged(mine)], [Delete(mine.key), Delete(f"{keys(cluster)[2]}{member.block}")])
    block = f"block {member.block}" if member is not None else "its block"
    return f"node {node} left cluster {cluster.name}: {block} released"
