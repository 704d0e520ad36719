"""A cluster's members, as its source has them: this node's claim, the members now, changes.

    source (static | etcd)  ->  View  ->  the agent: node plan = planner(cluster, members,
                                          this node), applied with the prune of what no
                                          member owns

A source never touches the kernel and the agent never talks to a datastore:
the two meet in a `View`, an immutable picture the source replaces whenever
something changes (and then sets `changed`).  A source that cannot answer
keeps its last members and says why in `condition`: nothing is removed
because a datastore is away.  The static list of `node` statements is one
source among others, so the static tests keep guarding the path every source
shares.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from compiler.datatypes import field, frozen
from compiler.ir import Cluster, IPInterface
from compiler.membership import Member, Members


@frozen
class View:
    """What a source knows now.

    `members` is None until the source has listed them once; `me` is None
    until this node holds a block.  `condition` is empty while the source
    answers, else what keeps it from doing so (the datastore unreachable, the
    pod CIDRs full, a block taken).
    """

    source: str
    members: Members | None = None
    me: Member | None = None
    condition: str = ""
    lease: int | None = None
    ttl: int | None = None
    seen: Mapping[str, float] = field(default_factory=dict)
    """When each member was last seen present (wall clock): now, while the source answers."""


class Source(Protocol):
    """Where a cluster's members come from, running beside the agent."""

    changed: threading.Event
    """Set whenever the view changed; the agent clears it before it reads the view."""

    def start(self) -> None:
        """Begin: claim this node's block, list the members, follow their changes."""
        ...

    def view(self) -> View:
        """The latest picture."""
        ...

    def stop(self) -> None:
        """End, keeping this node's claim: a restarted agent takes it up again."""
        ...


HoldsAddresses = Callable[[], bool]
"""Whether pods on this node hold addresses now (then its block must never change)."""


def source_for(cluster: Cluster, node: str, addresses: tuple[IPInterface, ...],
               memory_dir: str, holds_addresses: HoldsAddresses) -> Source:
    """The source of a cluster's members, for `node`, whose underlay `addresses` it publishes."""
    if cluster.membership.source == "etcd":
        from runtime.membership.etcd import EtcdSource

        return EtcdSource(cluster, node, addresses, memory_dir, holds_addresses)
    from runtime.membership.static import StaticSource

    return StaticSource(cluster, node)
