"""The agent's side of membership: its cluster's source, kept running, and the cluster it gives.

The agent asks, at each converge, for its cluster as the members make it
now.  The follower picks the cluster (the static one listing this node, else
the dynamic one), starts its source the first time and again whenever the
cluster's membership settings change, and answers with
`compiler.membership.with_members` of the latest view -- or, while this node
holds no block yet or the members were never listed, with `NotJoined`: no
conflist is written before the node's subnet is known.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from compiler import datatypes
from compiler.errors import NetcError
from compiler.ir import Cluster, IPInterface
from compiler.membership import routable, with_members
from runtime import underlay
from runtime.membership import Source, View, source_for
from runtime.netns import node_namespace


class NotJoined(NetcError):
    """The node holds no block yet, or its source has not listed the members once."""

    def __init__(self, message: str, cluster: Cluster, view: View) -> None:
        super().__init__(message)
        self.cluster, self.view = cluster, view
        """What the source says meanwhile (`netc status` shows it)."""


class Follower:
    """The running source of the agent's cluster."""

    def __init__(
        self,
        node: str,
        node_netns: str | None,
        addresses: Sequence[str],
        memory_dir: str,
        wake: threading.Event,
        *,
        kubeconfig: str | None = None,
    ) -> None:
        self.node = node
        self.node_netns = node_netns
        self.addresses = tuple(addresses)
        self.memory_dir = memory_dir
        self.kubeconfig = kubeconfig
        self.wake = wake
        """Set when the source's view changes, to wake the agent."""
        self.holds_addresses = False
        """Whether pods on the node hold addresses (the agent updates it at each converge)."""
        self.source: Source | None = None
        self._key: object = None
        self._applied: tuple[object, ...] | None = None

    def cluster(self, clusters: Sequence[Cluster]) -> tuple[Cluster | None, View | None]:
        """The agent's cluster as its members make it now, and the view it comes from."""
        cluster = self._pick(clusters)
        if cluster is None:
            self.stop()
            return None, None
        source = self._source_for(cluster)
        view = source.view()
        if view.members is None or view.me is None:
            raise NotJoined(
                f"not joined cluster {cluster.name} yet: {view.condition or 'listing its members'}",
                cluster,
                view,
            )
        self._applied = _essence(view)
        members, left_out = routable(cluster, self.node, view.members)
        if members.get(self.node) is None:
            raise NotJoined(
                f"this node cannot be routed to: {'; '.join(left_out)}",
                cluster,
                datatypes.replace(view, condition="; ".join(left_out)),
            )
        if left_out:
            view = datatypes.replace(
                view,
                condition="; ".join([view.condition, *left_out] if view.condition else left_out),
            )
        return with_members(cluster, members), view

    def changed(self) -> bool:
        """Whether the source's view moved since the cluster was last asked for."""
        return self.source is not None and _essence(self.source.view()) != self._applied

    def stop(self) -> None:
        """Stop following (a SIGTERM, or no cluster any more); claims are kept."""
        if self.source is not None:
            self.source.stop()
        self.source, self._key, self._applied = None, None, None

    def _pick(self, clusters: Sequence[Cluster]) -> Cluster | None:
        listed = next((c for c in clusters if not c.membership.dynamic and c.node(self.node)), None)
        if listed is not None:
            return listed
        dynamic = [c for c in clusters if c.membership.dynamic]
        if len(dynamic) > 1:
            raise NetcError(
                f"node {self.node} is listed in no cluster and there are "
                f"{len(dynamic)} clusters with dynamic membership "
                f"({', '.join(c.name for c in dynamic)}): a node joins one"
            )
        return dynamic[0] if dynamic else None

    def _source_for(self, cluster: Cluster) -> Source:
        """The running source of `cluster`, new when what it depends on changed."""
        key = (
            cluster
            if not cluster.membership.dynamic
            else datatypes.replace(
                cluster, nodes=tuple(sorted(cluster.nodes, key=lambda n: n.name)), span=None
            )
        )
        if self.source is not None and key == self._key:
            return self.source
        self.stop()
        source = source_for(
            cluster,
            self.node,
            self._addresses(cluster),
            self.memory_dir,
            lambda: self.holds_addresses,
            changed=self.wake,
            kubeconfig=self.kubeconfig,
        )
        with node_namespace(self.node_netns):  # its threads talk from the node's network
            source.start()
        self.source, self._key = source, key
        return source

    def _addresses(self, cluster: Cluster) -> tuple[IPInterface, ...]:
        """The addresses given, else the default route's; a Kubernetes source's: the Node's."""
        if not cluster.membership.dynamic:
            return ()
        if self.addresses:
            return underlay.given(self.addresses)
        if cluster.membership.source == "kubernetes":
            return ()
        return underlay.of_default_route(self.node_netns)


def _essence(view: View) -> tuple[object, ...]:
    """What of a view decides the node's plan and readiness (not when members were seen)."""
    return view.members, view.me, view.condition
