"""A cluster's members, as its source has them: this node's claim, the members now, changes.

    source (static | etcd | kubernetes)  ->  View  ->  the agent: node plan =
                                                        planner(cluster, members, this node),
                                                        applied with the prune of what no
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
import time
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


STATUS_FILE = "membership.json"
"""The agent's account of its cluster's members, beside its warm socket (`netc status`)."""
STATUS_FORMAT = 1


def status_document(cluster: Cluster, node: str, view: View) -> dict[str, object]:
    """What `netc status` shows of a cluster's membership.

    The source, this node's block and lease (or, of a Kubernetes Node, its podCIDRs), every
    member and when it was last seen.
    """
    me = view.me
    members = view.members.members if view.members is not None else ()
    return {
        "format": STATUS_FORMAT,
        "cluster": cluster.name,
        "source": view.source,
        "node": node,
        "condition": view.condition,
        "block": me.block if me is not None else None,
        "subnets": [str(s) for s in me.subnets] if me is not None else [],
        "lease": f"{view.lease:x}" if view.lease is not None else None,
        "ttl": view.ttl,
        "revision": view.members.revision if view.members is not None else None,
        "members": [
            {
                "name": m.name,
                "block": m.block,
                "subnets": [str(s) for s in m.subnets],
                "addresses": [str(a) for a in m.addresses],
                "last_seen": _when(view.seen.get(m.name)),
            }
            for m in members
        ],
    }


def _when(moment: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)) if moment is not None else None


HoldsAddresses = Callable[[], bool]
"""Whether pods on this node hold addresses now (then its block must never change)."""


def source_for(
    cluster: Cluster,
    node: str,
    addresses: tuple[IPInterface, ...],
    memory_dir: str,
    holds_addresses: HoldsAddresses,
    *,
    changed: threading.Event | None = None,
    kubeconfig: str | None = None,
) -> Source:
    """The source of a cluster's members, for `node`, whose underlay `addresses` it publishes.

    `changed` is the event it sets when its view changes (default: one of its own);
    `kubeconfig` where the Kubernetes API is when the agent runs outside a pod.
    """
    if cluster.membership.source == "kubernetes":
        from runtime.membership.kubernetes import KubernetesSource

        return KubernetesSource(
            cluster, node, addresses, holds_addresses, changed=changed, kubeconfig=kubeconfig
        )
    if cluster.membership.source == "etcd":
        from runtime.membership.etcd import EtcdSource

        return EtcdSource(cluster, node, addresses, memory_dir, holds_addresses, changed=changed)
    from runtime.membership.static import StaticSource

    return StaticSource(cluster, node, changed)
