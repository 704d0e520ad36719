"""The kubernetes source: the cluster's Node objects, each node's subnets its podCIDRs.

kube-controller-manager assigns every Node its `spec.podCIDRs`.  A node's
agent reads its own Node (its name from the downward API), checks them
against the cluster's `pod-cidr` and `node-block` -- a Node without them,
or with ones that do not fit, is a condition that says what to set, and the
node gets no conflist -- takes its underlay addresses (`--node-address`,
else the Node's InternalIP per family, with the prefix of the interface
holding it) and publishes them as the annotation `PREFIX/underlay-addresses`
of its own Node: what peers need and cannot derive.  The VTEP MAC follows
from the names, the VTEP address from the subnet.

Every Node is listed at a resourceVersion and watched from it with
bookmarks, which keep the version current while no Node changes; a watch
the server ends is taken up from the last version, a 410 Gone (the version
compacted) lists again and the listing replaces what was known.  A Node is
a member once its podCIDRs fit and its agent published its addresses; it
stops being one when the Node is deleted -- not when it becomes unreadable
(it keeps its last member) and never because the API is away: the last
members stay, and the condition says so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from compiler.ir import Cluster, IPInterface
from compiler.membership import (
    BadRecord,
    Member,
    Members,
    annotation_value,
    node_name,
    pod_cidr_advice,
    pod_cidrs_of,
    read_node,
    underlay_annotation,
)
from runtime import underlay
from runtime.kubeapi import (
    WATCH_SECONDS,
    ApiError,
    Expired,
    Kube,
    Refused,
    Unavailable,
    WatchEvent,
    from_kubeconfig,
    in_cluster,
)
from runtime.membership import HoldsAddresses
from runtime.membership.watched import Watched, log


class NotAMember(ApiError):
    """The agent's own Node cannot make its node a member: missing, without podCIDRs, unfit."""


def client(kubeconfig: str | None = None) -> Kube:
    """A client of the API: from a kubeconfig file when given, else as the pod it runs in."""
    return Kube(from_kubeconfig(kubeconfig) if kubeconfig else in_cluster())


class KubernetesSource(Watched):
    """A node's membership of a cluster of Kubernetes Nodes: its own published, all followed."""

    SOURCE = "kubernetes"
    TITLE = "the Kubernetes API"
    AGAIN = (Expired,)
    UNAVAILABLE = (Unavailable,)
    REFUSED = (ApiError, underlay.NoAddress)

    def __init__(
        self,
        cluster: Cluster,
        node: str,
        addresses: tuple[IPInterface, ...],
        holds_addresses: HoldsAddresses,
        *,
        changed: threading.Event | None = None,
        kube: Kube | None = None,
        kubeconfig: str | None = None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        super().__init__(changed, f"joining: reading Node {node}")
        self.cluster = cluster
        self.node = node
        self.given = addresses
        """The addresses given on the command line (none: the Node's InternalIPs)."""
        self.holds_addresses = holds_addresses
        self.kube = kube or client(kubeconfig)
        self.annotation = underlay_annotation(cluster)
        self.watch_seconds = watch_seconds
        self._publish = True
        """This node's Node must be read and its annotation written (again)."""
        self._skipped: dict[str, str] = {}
        """Nodes that are no members, and why (logged once per reason)."""
        self._thread = threading.Thread(target=self._follow, name="membership", daemon=True)

    def start(self) -> None:
        """Read and annotate this node's Node, then list and watch them all, in a thread."""
        self._thread.start()

    # following the Nodes

    def _round(self) -> None:
        if self._must_publish():
            self._join()
        listing = self.kube.list_nodes()
        self._replace(self._members_of(listing.items), _revision(listing.resource_version))
        self._check_own(listing.items)
        version = listing.resource_version
        while not self._stopping.is_set() and not self._must_publish():
            version = self._watch(version)

    def _check_own(self, nodes: Iterable[dict[str, Any]]) -> None:
        """Publish again if the listed own Node is not what was published.

        Someone may have written it between the publishing and the listing;
        the watch starts after the listing and never brings that change.
        """
        for node in nodes:
            if _name_or_none(node) == self.node:
                with self._lock:
                    if self._me is not None and _member_or_none(self.cluster, node) != self._me:
                        self._publish = True
                return

    def _watch(self, version: str) -> str:
        """One watch from `version`, until the server ends it; the version reached."""
        for event in self.kube.watch_nodes(version, self.watch_seconds):
            self._apply(event)
            version = event.resource_version
            if self._stopping.is_set() or self._must_publish():
                break
        return version

    def _must_publish(self) -> bool:
        with self._lock:
            return self._publish

    def _members_of(self, nodes: Iterable[dict[str, Any]]) -> dict[str, Member]:
        """The members the listed Nodes make; a Node unreadable now keeps its last member."""
        found = {}
        for node in nodes:
            name = _name_or_none(node)
            if name is None:
                continue
            member = self._read(name, node)
            if member is not None:
                found[name] = member
        return found

    def _read(self, name: str, node: dict[str, Any]) -> Member | None:
        try:
            member = read_node(self.cluster, node)
        except BadRecord as error:
            if self._skipped.get(name) != str(error):
                self._skipped[name] = str(error)
                log(f"Node {name} is no member: {error}")
            return self._me if name == self.node else self._members.get(name)
        self._skipped.pop(name, None)
        return member

    def _apply(self, event: WatchEvent) -> None:
        with self._lock:
            self._available()
            self._revision = _revision(event.resource_version)
            if event.type != "BOOKMARK":
                self._change(event.type, event.node)
        self.changed.set()

    def _change(self, kind: str, node: dict[str, Any]) -> None:
        """A Node added, modified or deleted (the lock held)."""
        name = _name_or_none(node)
        if name is None:
            return
        if kind == "DELETED":
            if name == self.node:
                self._own_node_deleted()
            else:
                self._gone(name)
            return
        member = self._read(name, node)
        if member is not None:
            self._present(member)
        if name == self.node and _member_or_none(self.cluster, node) != self._me:
            self._publish = True  # its annotation was changed or removed, or its podCIDRs

    def _own_node_deleted(self) -> None:
        """The node's own Node is gone (the lock held): join again once it is registered."""
        self._publish = True
        self._condition = (
            f"this node's Node {self.node} was deleted: waiting for the "
            "kubelet to register it again"
        )

    def _listing_done(self, listed: Mapping[str, Member]) -> None:
        """A listing without the node's own Node says what its DELETED event would have said.

        The watch that should have brought the event broke, and the listing came after.
        """
        if self._me is None:
            return
        if self.node in listed:
            self._members[self.node] = listed[self.node]
        else:
            self._own_node_deleted()

    # this node's own Node

    def _join(self) -> None:
        """Read this node's Node, check its podCIDRs, publish its underlay addresses."""
        node = self._own_node()
        try:
            subnets = pod_cidrs_of(self.cluster, node.get("spec") or {})
        except BadRecord as error:
            raise NotAMember(
                f"Node {self.node}: {error}: {pod_cidr_advice(self.cluster)}"
            ) from None
        addresses = self.given or underlay.holding(_internal_ips(node))
        member = Member(self.node, None, addresses, subnets=subnets)
        with self._lock:
            mine = self._me
        if mine is not None and mine.subnets != subnets and self.holds_addresses():
            raise NotAMember(
                f"Node {self.node} has podCIDRs {', '.join(map(str, subnets))} now, and this "
                f"node's pods have addresses from {', '.join(map(str, mine.subnets))}: netc "
                "does not renumber a node that has pods (drain it and remove its pods)"
            )
        value = annotation_value(addresses)
        annotations = node.get("metadata", {}).get("annotations") or {}
        if annotations.get(self.annotation) != value:
            self.kube.patch_annotations(self.node, {self.annotation: value})
            log(f"published {self.annotation}={value} on Node {self.node}")
        with self._lock:
            self._me, self._publish = member, False
            self._members[self.node] = member
            self._condition = ""
        log(
            f"member of cluster {self.cluster.name}: pod subnets "
            f"{', '.join(map(str, subnets))}, underlay {value}"
        )
        self.changed.set()

    def _own_node(self) -> dict[str, Any]:
        try:
            return self.kube.get_node(self.node)
        except Refused as error:
            if error.status != 404:
                raise
            raise NotAMember(
                f"there is no Node {self.node}: the kubelet has not registered "
                "it yet, or --node-name is not the kubelet's node name"
            ) from None


def _internal_ips(node: Mapping[str, Any]) -> list[str]:
    """The Node's first InternalIP of each family."""
    status = node.get("status")
    listed = status.get("addresses") if isinstance(status, dict) else None
    found: dict[int, str] = {}
    for entry in listed if isinstance(listed, list) else []:
        if isinstance(entry, dict) and entry.get("type") == "InternalIP":
            text = str(entry.get("address", ""))
            found.setdefault(6 if ":" in text else 4, text)
    if not found:
        raise NotAMember(
            f"Node {node_name(node)} has no InternalIP: give the node's underlay "
            "address with --node-address ADDRESS/PREFIX"
        )
    return [found[family] for family in sorted(found)]


def _name_or_none(node: Mapping[str, Any]) -> str | None:
    try:
        return node_name(node)
    except BadRecord:
        return None


def _member_or_none(cluster: Cluster, node: Mapping[str, Any]) -> Member | None:
    try:
        return read_node(cluster, node)
    except BadRecord:
        return None


def _revision(version: str) -> int:
    """A resourceVersion as a number for `netc status` (opaque to clients: 0 when it is not)."""
    return int(version) if version.isdigit() else 0


def members_now(cluster: Cluster, kubeconfig: str | None = None) -> Members:
    """The cluster's members as the API lists its Nodes now; Nodes that are none left out."""
    listing = client(kubeconfig).list_nodes()
    found = []
    for node in listing.items:
        try:
            found.append(read_node(cluster, node))
        except BadRecord as error:
            log(f"Node {node.get('metadata', {}).get('name')!r} is no member: {error}")
    return Members.of(_revision(listing.resource_version), found)
