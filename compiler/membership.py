"""Who is in a cluster now: the members a source lists, as the node plan reads them.

A node's plan is a function of two inputs, the compiled cluster and its
members: with `membership static` the members are the `node` statements;
with a datastore they are what it lists now (a `Members` snapshot), and the
`node` statements only pin blocks to names.  `with_members` turns a snapshot
into the cluster the planner already knows -- a `Node` per member, its
subnets from its block -- so pods, conflists and a node's routes come out of
the same code whatever the source.

A member's record is data from a datastore: `read_member` checks every
field (a node name, a block inside the pod CIDRs, underlay addresses outside
them) before anything is planned from it, and `read_node` does the same for
a Kubernetes Node: its podCIDRs (which kube-controller-manager assigned) and
the underlay addresses its agent published as an annotation.  Pure: no I/O
here.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Iterable, Mapping

from compiler import datatypes
from compiler.cluster import block_count, block_subnets
from compiler.datatypes import frozen
from compiler.digests import sha256
from compiler.identifiers import is_node_name
from compiler.ir import Cluster, IPInterface, IPNetwork, Node, subnet_within
from compiler.source import Span

RECORD_FORMAT = 1
RECORD_MAX = 4096
"""Bytes a member's record may take: a name, a block and two addresses fit many times over."""


@frozen
class Member:
    """A node as the datastore has it: its name, its block and its underlay addresses."""

    name: str
    block: int | None
    addresses: tuple[IPInterface, ...]
    leaving: bool = False
    """It announced its leave (`netc leave`): peers drop it at once, no grace period."""
    subnets: tuple[IPNetwork, ...] = ()
    """Subnets given outright (a static `node` with `subnet`); else its block's."""
    span: Span | None = None
    """Its `node` statement, for a static member: plans cite it."""

    def record(self) -> bytes:
        """The member's value in the datastore."""
        document = {
            "format": RECORD_FORMAT,
            "node": self.name,
            "block": self.block,
            "addresses": [str(a) for a in self.addresses],
        }
        if self.leaving:
            document["leaving"] = True
        return json.dumps(document, sort_keys=True).encode()


@frozen
class Members:
    """Every member of a cluster at one revision of its source, by name."""

    revision: int
    members: tuple[Member, ...] = ()

    def get(self, name: str) -> Member | None:
        """The member of this name, if there is one."""
        return next((m for m in self.members if m.name == name), None)

    @classmethod
    def of(cls, revision: int, members: Iterable[Member]) -> Members:
        """A snapshot of `members`, in name order."""
        return cls(revision, tuple(sorted(members, key=lambda m: m.name)))


class BadRecord(ValueError):
    """A member record that is not one netc wrote, or not for this cluster."""


def read_member(cluster: Cluster, name: str, value: bytes) -> Member:
    """The member stored under `name`, checked against the cluster (`BadRecord` why not)."""
    if len(value) > RECORD_MAX:
        raise BadRecord(f"{len(value)} bytes, more than {RECORD_MAX}")
    try:
        document = json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BadRecord("not JSON") from None
    if not isinstance(document, dict) or document.get("format") != RECORD_FORMAT:
        raise BadRecord(f"not a member record of format {RECORD_FORMAT}")
    if document.get("node") != name or not is_node_name(name):
        raise BadRecord(f"names node {document.get('node')!r}, stored as {name!r}")
    block = document.get("block")
    if (
        not isinstance(block, int)
        or isinstance(block, bool)
        or not (0 <= block < block_count(cluster))
    ):
        raise BadRecord(f"block {block!r} is not one of the {block_count(cluster)} blocks")
    addresses = _addresses(cluster, document.get("addresses"))
    return Member(name, block, addresses, document.get("leaving") is True)


UNDERLAY_ANNOTATION = "underlay-addresses"
"""The annotation (after the cluster's prefix) where an agent publishes its node's underlay
addresses, with their prefixes, comma-separated: the Node's own addresses have no prefix."""


class NoPodCIDR(BadRecord):
    """A Node that kube-controller-manager gave no podCIDR (yet)."""


def underlay_annotation(cluster: Cluster) -> str:
    """The key of the underlay addresses' annotation on each Node."""
    return cluster.membership.annotation_prefix + UNDERLAY_ANNOTATION


def annotation_value(addresses: Iterable[IPInterface]) -> str:
    """The underlay addresses as the annotation holds them: `192.0.2.11/24,2001:db8::11/64`."""
    return ",".join(str(a) for a in addresses)


def read_node(cluster: Cluster, node: object) -> Member:
    """The member a Kubernetes Node makes, checked against the cluster (`BadRecord` why not).

    Its name, its podCIDRs (`pod_cidrs_of`) and the underlay addresses its
    agent published; a Node without them has no agent of netc's yet.
    """
    name, spec, metadata = _node_parts(node)
    subnets = pod_cidrs_of(cluster, spec)
    annotations = metadata.get("annotations")
    value = annotations.get(underlay_annotation(cluster)) if isinstance(annotations, dict) else None
    if not isinstance(value, str):
        raise BadRecord(
            f"no annotation {underlay_annotation(cluster)}: netc's agent has not run on it yet"
        )
    if len(value) > RECORD_MAX:
        raise BadRecord(
            f"annotation {underlay_annotation(cluster)} has {len(value)} "
            f"characters, more than {RECORD_MAX}"
        )
    return Member(name, None, _addresses(cluster, value.split(",")), subnets=subnets)


def node_name(node: object) -> str:
    """A Node's name (`BadRecord` when it has none that is a node's)."""
    return _node_parts(node)[0]


def _node_parts(node: object) -> tuple[str, dict[str, object], dict[str, object]]:
    """A Node's name, spec and metadata, each of the type the API gives it."""
    metadata = node.get("metadata") if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(metadata, dict):
        raise BadRecord("not a Node object")
    name = metadata.get("name")
    if not isinstance(name, str) or not is_node_name(name):
        raise BadRecord(f"{name!r} is not a node name")
    spec = node.get("spec", {})
    if not isinstance(spec, dict):
        raise BadRecord("its spec is not an object")
    return name, spec, metadata


def pod_cidrs_of(cluster: Cluster, spec: Mapping[str, object]) -> tuple[IPNetwork, ...]:
    """A Node's podCIDRs as its subnets of the cluster, in the order of its pod CIDRs.

    Each of the cluster's pod CIDRs needs one, inside it and of its node
    block's size -- the agreement between kube-controller-manager's
    --cluster-cidr and --node-cidr-mask-size and the cluster's `pod-cidr` and
    `node-block`.  A podCIDR of a family the cluster does not route is left
    alone (a dual-stack Kubernetes cluster, an IPv4 pod network).
    """
    listed = spec.get("podCIDRs")
    if listed is None and isinstance(spec.get("podCIDR"), str):
        listed = [spec["podCIDR"]]
    if not listed:
        raise NoPodCIDR("it has no podCIDR")
    if not isinstance(listed, list) or len(listed) > 2:
        raise BadRecord("spec.podCIDRs is not a list of one or two CIDRs")
    found: dict[int, IPNetwork] = {}
    for text in listed:
        try:
            subnet = ipaddress.ip_network(text) if isinstance(text, str) else None
        except ValueError:
            subnet = None
        if subnet is None or subnet.version in found:
            raise BadRecord(f"podCIDR {text!r} is not a CIDR, or a second of its family")
        found[subnet.version] = subnet
    return tuple(
        _in_pod_cidr(cluster, found.get(c.version), c, prefix)
        for c, prefix in zip(cluster.pod_cidrs, cluster.node_blocks, strict=True)
    )


def _in_pod_cidr(
    cluster: Cluster, subnet: IPNetwork | None, pod_cidr: IPNetwork, prefix: int
) -> IPNetwork:
    if subnet is None:
        raise NoPodCIDR(
            f"it has no IPv{pod_cidr.version} podCIDR, and pod-cidr {pod_cidr} needs one"
        )
    if not subnet_within(subnet, pod_cidr):
        raise BadRecord(f"its podCIDR {subnet} is outside the cluster's pod-cidr {pod_cidr}")
    if subnet.prefixlen != prefix:
        raise BadRecord(
            f"its podCIDR {subnet} is a /{subnet.prefixlen}, and the cluster's "
            f"node-block is /{prefix}"
        )
    return subnet


def pod_cidr_advice(cluster: Cluster) -> str:
    """What to set so that kube-controller-manager assigns the podCIDRs the cluster expects."""
    cidrs = ",".join(str(c) for c in cluster.pod_cidrs)
    if len(cluster.pod_cidrs) == 1:
        sizes = f"--node-cidr-mask-size={cluster.node_blocks[0]}"
    else:
        sizes = " ".join(
            f"--node-cidr-mask-size-ipv{c.version}={prefix}"
            for c, prefix in zip(cluster.pod_cidrs, cluster.node_blocks, strict=True)
        )
    return (
        f"kube-controller-manager assigns them when run with --allocate-node-cidrs "
        f"--cluster-cidr={cidrs} {sizes} (kubeadm init --pod-network-cidr={cidrs}); "
        "they must agree with the cluster's pod-cidr and node-block"
    )


def _addresses(cluster: Cluster, listed: object) -> tuple[IPInterface, ...]:
    if not isinstance(listed, list) or not 1 <= len(listed) <= 2:
        raise BadRecord("`addresses` is not a list of one or two addresses")
    found = []
    for text in listed:
        try:
            address = ipaddress.ip_interface(text) if isinstance(text, str) else None
        except ValueError:
            address = None
        if address is None or "/" not in text:
            raise BadRecord(f"{text!r} is not an address with its prefix")
        if any(address.ip in c for c in cluster.pod_cidrs):
            raise BadRecord(f"underlay address {address.ip} is inside the pod CIDRs")
        found.append(address)
    if len({a.version for a in found}) != len(found):
        raise BadRecord("two addresses of one family")
    return tuple(found)


def with_members(cluster: Cluster, members: Members) -> Cluster:
    """The cluster as its members make it: one node per member, in name order.

    Two members holding one subnet (a datastore or Nodes edited by hand)
    keep it for the first by name; the other is left out rather than given a
    subnet that overlaps.  A member's subnets are given (a static `node` with
    `subnet`, a Node's podCIDRs) or its block's.
    """
    nodes: list[Node] = []
    taken: set[IPNetwork] = set()
    for member in members.members:
        subnets = member.subnets or block_subnets(cluster, member.block or 0)
        if taken.intersection(subnets):
            continue
        taken.update(subnets)
        nodes.append(Node(member.name, member.addresses, subnets, member.block, member.span))
    return datatypes.replace(cluster, nodes=tuple(nodes))


def routable(cluster: Cluster, me: str, members: Members) -> tuple[Members, tuple[str, ...]]:
    """The members `me` can route to, and why each other one is left out.

    What `netc check` refuses in a static cluster's node statements, for the
    addresses members publish at run time: VXLAN between the nodes of a
    dynamic cluster runs over IPv4 (the MTU its pods were given assumes it),
    so a member without an IPv4 address is left out rather than switch every
    node to IPv6; with host-gw a member needs an address of each pod CIDR's
    family (E609), on this node's underlay subnet (E611), or no route could
    reach it.
    """
    own = members.get(me)
    kept, reasons = [], []
    for member in members.members:
        reason = _unroutable(cluster, own, member)
        if reason is None:
            kept.append(member)
        else:
            reasons.append(f"member {member.name} is left out: {reason}")
    return Members(members.revision, tuple(kept)), tuple(reasons)


def _unroutable(cluster: Cluster, own: Member | None, member: Member) -> str | None:
    addresses = {a.version: a for a in member.addresses}
    if cluster.routing.tunnels and 4 not in addresses:
        return "it has no IPv4 underlay address, and VXLAN between the nodes runs over IPv4"
    if cluster.routing.mode != "host-gw":
        return None
    for family in sorted({c.version for c in cluster.pod_cidrs}):
        if family not in addresses:
            return (
                f"it has no IPv{family} underlay address, and host-gw routes each family "
                "through one"
            )
        mine = next((a for a in own.addresses if a.version == family), None) if own else None
        if own is not member and mine is not None and addresses[family].ip not in mine.network:
            return (
                f"its address {addresses[family].ip} is not on this node's underlay subnet "
                f"{mine.network}: host-gw cannot route to it (use `routing mixed` or "
                "`vxlan`)"
            )
    return None


def pinned_blocks(cluster: Cluster) -> dict[str, int]:
    """The blocks `node` statements pin to names: a dynamic cluster's reservations."""
    return {n.name: n.block for n in cluster.nodes if n.block is not None}


def members_of(cluster: Cluster) -> Members:
    """A static cluster's members: its `node` statements as they are, in their order."""
    return Members(
        0,
        tuple(
            Member(n.name, n.block, n.addresses, subnets=n.subnets, span=n.span)
            for n in cluster.nodes
        ),
    )


def choose_block(
    cluster: Cluster, name: str, taken: Mapping[int, str], remembered: int | None = None
) -> int | None:
    """The block `name` should claim; None when the pod CIDRs have none left for it.

    Its pinned block, else the one it remembers if that is free (or its
    own), else the first block nobody holds and nobody else is pinned to,
    from a place that follows from its name: nodes that start together
    mostly try different blocks, rather than all the lowest free one, and
    their create-if-absent transactions rarely collide.  `taken` maps the
    blocks held now to their holders.
    """
    pinned = pinned_blocks(cluster)
    if name in pinned:
        return pinned[name]
    reserved = {block for owner, block in pinned.items() if owner != name}
    count = block_count(cluster)
    if (
        remembered is not None
        and remembered not in reserved
        and taken.get(remembered, name) == name
        and remembered < count
    ):
        return remembered
    start = int.from_bytes(sha256(name.encode()).digest()[:8], "big") % count
    return next(
        (
            block
            for block in itertools.chain(range(start, count), range(start))
            if block not in taken and block not in reserved
        ),
        None,
    )
