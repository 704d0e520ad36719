"""What `netc plan --node` and `netc apply --node` share: a node's networks and its plan."""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from compiler.cluster import NodeUnknown, needs_node, networks_for_node
from compiler.ir import Cluster, Network
from compiler.pipeline import Compilation
from compiler.planner.node import node_plan
from compiler.planner.ops import Plan
from runtime.cli.common import SystemFailure


def networks_of(compilation: Compilation, node: str | None) -> list[Network]:
    """The networks as the node runs them (no node: a cluster network cannot be planned)."""
    networks = list(compilation.networks)
    if node is None:
        pending = needs_node(networks)
        if pending:
            raise click.UsageError(
                f"network {pending[0].name} draws its subnets from a cluster: give --node NAME"
            )
        return networks
    try:
        return networks_for_node(networks, compilation.clusters, node)
    except NodeUnknown as error:
        raise click.UsageError(error.message) from error


def plan_of_node(
    compilation: Compilation,
    node: str,
    networks: Sequence[Network],
    only: str | None,
    live_members: bool = False,
) -> Plan:
    """The node-scoped plan of `node` (of its cluster, if one lists it) for some networks.

    Not of a node of a dynamic cluster -- its routes and tunnel entries
    follow the members its source lists at run time, which its agent
    applies; a plan made from the pinned nodes alone would remove every
    other node's routes -- unless the members were read from the source
    (`live_members`, `with_live_members`).
    """
    cluster = next((c for c in compilation.clusters if c.node(node)), None)
    if cluster is not None and cluster.membership.dynamic and not live_members:
        raise click.UsageError(
            f"node {node} of cluster {cluster.name} routes to the members "
            f"{cluster.membership.source} holds at run time, with the address its agent "
            "publishes: its node-scoped plan is made and applied by its agent (netc agent), "
            "not from the configuration alone"
        )
    chosen = [n for n in networks if only in (None, n.name)]
    return node_plan(cluster, node, chosen)


def with_live_members(compilation: Compilation) -> Compilation:
    """The compilation with each dynamic cluster's nodes as its datastore lists them now.

    The Kubernetes API is the one `$KUBECONFIG` names, else the pod's own.
    """
    from compiler import datatypes
    from compiler.membership import with_members
    from runtime.etcd import EtcdError
    from runtime.kubeapi import ApiError
    from runtime.membership import etcd, kubernetes

    def now(cluster: Cluster) -> Cluster:
        if not cluster.membership.dynamic:
            return cluster
        try:
            if cluster.membership.source == "kubernetes":  # kubectl's kubeconfig, else the pod's
                members = kubernetes.members_now(cluster, os.environ.get("KUBECONFIG"))
            else:
                members = etcd.members_now(cluster)
            return with_members(cluster, members)
        except (EtcdError, ApiError) as error:
            raise SystemFailure(
                f"cannot list the members of cluster {cluster.name}: {error}"
            ) from error

    return datatypes.replace(compilation, clusters=tuple(now(c) for c in compilation.clusters))
