"""The static source: a cluster's members are its `node` statements, and never change."""

from __future__ import annotations

import threading
import time

from compiler.ir import Cluster
from compiler.membership import members_of
from runtime.membership import View


class StaticSource:
    """The `node` statements as members; this node is the one of its name."""

    def __init__(self, cluster: Cluster, node: str, changed: threading.Event | None = None) -> None:
        self.changed = changed or threading.Event()
        members = members_of(cluster)
        me = members.get(node)
        condition = (
            ""
            if me
            else (f"node {node} is not listed in cluster {cluster.name} (its membership is static)")
        )
        now = time.time()
        self._view = View(
            "static", members, me, condition, seen={m.name: now for m in members.members}
        )

    def start(self) -> None:
        """Nothing to start: the view is complete."""
        self.changed.set()

    def view(self) -> View:
        """The node statements."""
        return self._view

    def stop(self) -> None:
        """Nothing runs."""
