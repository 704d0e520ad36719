"""Change plans: what a revision of the `.netdsl` does to the nodes (`netc plan --against`).

terraform's plan answers "what changes if this merges"; this module answers
it for netc, from two compilations of the same files:

    meaning   each setting that differs (`pods: bridge.mtu 1500 -> 1400`), with
              the line of the new revision it comes from
    node      node-scoped operations added, removed or changed: a bridge, NAT,
              routes and tunnel entries to peers -- they change at once, with
              `netc apply` (or, for a network's own, the next pod's ADD)
    pods      operations of a pod's ADD -- its veth, addresses, routes, shaping --
              reach only pods created from now on; running pods keep theirs
              until they are re-created
    default   the node's default network (the lexically first conflist), when
              another network takes its place

Source locations make no noise: settings are compared without their spans,
operations by kind and target, so a revision that only adds comments or moves
lines has an empty change plan.  What the new revision adds or changes cites its
line; what it removes cites the old revision's (`HEAD~1:cluster.netdsl:15:5`).

Running pods keep what their ADD gave them -- addresses from their node's
subnets, a veth on their network's bridge -- until they are re-created.  A
revision that stops serving those (a new `pod-cidr`, another block, a renamed
bridge) strands them: the change plan names such pods first and marks every
node operation that served them and leaves the plan or changes, so that "at
once" is never read as harmless.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from compiler import datatypes, emit, ir_codec
from compiler.cluster import cluster_of, for_node, networks_for_node
from compiler.datatypes import frozen
from compiler.ir import Cluster, IPNetwork, Network, subnet_within
from compiler.planner.context import PodContext
from compiler.planner.node import node_plan
from compiler.planner.ops import Kind, Operation, Params
from compiler.planner.plan import PlanError, plan
from compiler.source import Span

DEFAULT_SCOPE = "every node"
AT_ONCE = "at once"
NEW_PODS = "new pods only; running pods keep theirs until re-created"
POLICY = "every ADD from now on; running pods keep what they were given"
NODE_NOW = f"{AT_ONCE}, with `netc apply` or the next pod's ADD"
POLICY_SETTINGS = ("hostport.allow", "hostport.deny", "hostport.host_ips", "bandwidth.")
"""Settings the plugin consults on each ADD: no operation changes, the next decisions do."""
CHANGES_FORMAT = "1.1"
"""1.1: `old_source` and `breaks_running_pods` on each change, `breaking_count`."""
EXAMPLE_POD = PodContext("example-pod", port_mappings=(), bandwidth=None)
"""The pod whose ADD stands for every pod's: no ports, no bandwidth request."""


@frozen
class Change:
    """One difference between the revisions: where, what, before and after, and when it bites."""

    scope: str
    layer: str
    action: str
    subject: str
    old: str | None
    new: str | None
    effect: str | None
    span: Span | None = None
    """Where the new revision says it (None for what it removed)."""
    was: Span | None = None
    """Where the old revision said it (what was removed or changed)."""
    breaks: str | None = None
    """Why running pods break, when they do."""

    def to_json(self) -> dict[str, Any]:
        """The machine form."""
        return {
            "scope": self.scope,
            "layer": self.layer,
            "action": self.action,
            "subject": self.subject,
            "old": self.old,
            "new": self.new,
            "effect": self.effect,
            "source": self.span.to_json() if self.span else None,
            "old_source": self.was.to_json() if self.was else None,
            "breaks_running_pods": self.breaks,
        }


@frozen
class Held:
    """What the running pods of a network on a node were given: their bridge and subnets."""

    bridge: str | None
    subnets: tuple[IPNetwork, ...]
    span: Span | None
    """Where the revision gives them: the node's block, or the network's `ipam`."""

    def __str__(self) -> str:
        where = f" on {self.bridge}" if self.bridge else ""
        return ", ".join(map(str, self.subnets)) + where


@frozen
class Stranded:
    """Running pods holding what the new revision no longer serves."""

    network: str
    node: str | None
    old: Held
    new: Held
    subnets: tuple[IPNetwork, ...]
    """Their subnets that the new revision does not cover."""
    bridge: str | None
    """Their bridge, when the network moved to another one."""

    def change(self, scope: str, by_agent: bool = False) -> Change:
        """The line that names these pods, what they lose and what to do.

        `by_agent`: the node's agent, not `netc apply`, sets the node up (a
        dynamic cluster's).
        """
        lost = (
            [f"their addresses in {', '.join(map(str, self.subnets))} are no longer served"]
            if self.subnets
            else []
        )
        if self.bridge:
            lost.append(f"their veths stay on {self.bridge}")
        done = (
            "its agent holds the new block"
            if by_agent
            else f"`netc apply --node {self.node}` has run"
        )
        remedy = (
            (f"drain {self.node} and re-create its pods once {done}")
            if self.node
            else ("re-create them once their node has the new revision")
        )
        return Change(
            scope,
            "running pods",
            "changed",
            f"running pods of network {self.network}",
            str(self.old),
            str(self.new),
            f"they keep what they were given until re-created: {remedy}",
            self.new.span,
            self.old.span,
            "; ".join(lost),
        )


def compare(
    old_networks: Sequence[Network],
    old_clusters: Sequence[Cluster],
    new_networks: Sequence[Network],
    new_clusters: Sequence[Cluster],
) -> list[Change]:
    """Every change from the old revision to the new one, network by network, node by node."""
    old, new = _by_name(old_networks), _by_name(new_networks)
    stranded = _stranded(_held(old_networks, old_clusters), _held(new_networks, new_clusters))
    changes = _default_network_change(old_networks, new_networks)
    for name in sorted(set(old) | set(new)):
        changes += _network_changes(
            name, old.get(name), new.get(name), old_clusters, new_clusters, stranded=stranded
        )
    changes += _membership_changes(old_clusters, new_clusters)
    nodes = sorted({n.name for c in [*old_clusters, *new_clusters] for n in c.nodes})
    for node in nodes:
        changes += _node_changes(
            node, old_networks, old_clusters, new_networks, new_clusters, stranded=stranded
        )
    return changes


def _membership_changes(
    old_clusters: Sequence[Cluster], new_clusters: Sequence[Cluster]
) -> list[Change]:
    """Where a cluster's members come from, setting by setting (`membership.endpoints`)."""
    old = {c.name: c for c in old_clusters}
    changes = []
    for cluster in new_clusters:
        before = old.get(cluster.name)
        if before is None:
            continue
        after, was = _membership_settings(cluster), _membership_settings(before)
        here, there = cluster.membership.span or cluster.span, before.membership.span or before.span
        changes += [
            Change(
                f"cluster {cluster.name}",
                "setting",
                _action(was.get(key), after.get(key)),
                key,
                was.get(key),
                after.get(key),
                "the nodes' agents take it up once the new configuration reaches them",
                here if key in after else None,
                there if key in was else None,
            )
            for key in sorted(set(was) | set(after))
            if was.get(key) != after.get(key)
        ]
    return changes


def _held(
    networks: Sequence[Network], clusters: Sequence[Cluster]
) -> dict[tuple[str, str | None], Held]:
    """(network, node) -> what its pods are given; node None outside a cluster."""
    held = {}
    for network in networks:
        cluster = cluster_of(network, clusters)
        built = (
            [(node, for_node(network, cluster, node)) for node in cluster.nodes]
            if cluster
            else [(None, network)]
        )
        for node, copy in built:
            if copy.ipam is not None:
                held[network.name, node.name if node else None] = Held(
                    copy.bridge.name if copy.bridge else None,
                    tuple(s.cidr for s in copy.ipam.subnets),
                    node.span if node else copy.ipam.span,
                )
    return held


def _stranded(
    before: Mapping[tuple[str, str | None], Held], after: Mapping[tuple[str, str | None], Held]
) -> list[Stranded]:
    """Pods whose subnet or bridge the new revision drops.

    A removed network's or node's pods are left out: they go with it, on purpose.
    """
    found = []
    for (network, node), old in before.items():
        new = after.get((network, node))
        if new is None:
            continue
        lost = tuple(
            s for s in old.subnets if not any(subnet_within(s, kept) for kept in new.subnets)
        )
        bridge = old.bridge if old.bridge != new.bridge else None
        if lost or bridge:
            found.append(Stranded(network, node, old, new, lost, bridge))
    return found


def _breaks(op: Operation[Params], stranded: Sequence[Stranded]) -> str | None:
    """Why running pods break when `op` of the old revision leaves the plan or changes.

    It serves a subnet they keep their addresses in, or acts on the bridge they stay on.
    """
    words = set(_strings(op.params.to_json()))
    served = [network for word in words if (network := _as_network(word)) is not None]
    for pods in stranded:
        if pods.bridge in words:
            return f"running pods stay on {pods.bridge} until re-created"
        lost = next((s for s in pods.subnets for n in served if subnet_within(n, s)), None)
        if lost is not None:
            return f"it serves {lost}, where running pods keep their addresses until re-created"
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string inside parameters (iptables rules are lists of words)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _as_network(word: str) -> IPNetwork | None:
    """The network an address or prefix names (`10.244.1.1/24` -> 10.244.1.0/24), if it is one."""
    try:
        return ipaddress.ip_interface(word).network
    except ValueError:
        return None


def _default_network_change(old: Sequence[Network], new: Sequence[Network]) -> list[Change]:
    """The node's default network, the one of the lexically first conflist, if it changes.

    containerd and CRI-O attach every new pod to it: a rename, a new file or
    a priority can move all new pods to another network.
    """
    before, after = _default(old), _default(new)
    if before is None or after is None or before.name == after.name:
        return []
    return [
        Change(
            DEFAULT_SCOPE,
            "default",
            "changed",
            "default network",
            f"{before.name} ({emit.file_name(before)})",
            f"{after.name} ({emit.file_name(after)})",
            f"new pods attach to `{after.name}` once its conflist is written "
            "(containerd and CRI-O take the lexically first); running pods stay on "
            f"`{before.name}`",
            after.span,
        )
    ]


def _default(networks: Sequence[Network]) -> Network | None:
    return min(networks, key=emit.file_name, default=None)


def _by_name(networks: Sequence[Network]) -> dict[str, Network]:
    return {n.name: n for n in networks}


def _network_changes(
    name: str,
    old: Network | None,
    new: Network | None,
    old_clusters: Sequence[Cluster],
    new_clusters: Sequence[Cluster],
    *,
    stranded: Sequence[Stranded],
) -> list[Change]:
    scope = f"network {name}"
    if old is None:
        assert new is not None
        return [
            Change(
                scope,
                "network",
                "added",
                name,
                None,
                None,
                "its conflist is written "
                "by the next build; pods attach to it once the runtime loads it",
                new.span,
            )
        ]
    if new is None:
        return [
            Change(
                scope,
                "network",
                "removed",
                name,
                None,
                None,
                "the next build removes "
                "its conflist; its running pods keep their attachment until deleted",
                was=old.span,
            )
        ]
    changes = [
        Change(
            scope,
            "setting",
            _action(o, n),
            key,
            o,
            n,
            POLICY if key.startswith(POLICY_SETTINGS) else None,
            _span(new, key) if n is not None else None,
            _span(old, key) if o is not None else None,
        )
        for key, o, n in _setting_changes(old, new)
    ]
    if not changes:
        return []
    changes = [
        pods.change(scope) for pods in stranded if pods.network == name and pods.node is None
    ] + changes
    old_pod, new_pod = _pod_ops(old, old_clusters), _pod_ops(new, new_clusters)
    changes += _operation_changes(
        scope, "pods", old_pod, new_pod, effect=NEW_PODS, relevant=lambda op: op.owned
    )
    if not (new.ipam and new.ipam.cluster):  # a cluster's nodes are compared node by node
        changes += _operation_changes(
            scope,
            "node",
            old_pod,
            new_pod,
            effect=NODE_NOW,
            relevant=lambda op: not op.owned,
            breaks=lambda op: _breaks(op, stranded),
        )
    return changes


def _pod_ops(network: Network, clusters: Sequence[Cluster]) -> list[Operation[Params]]:
    """The ADD of the example pod; a cluster's network as its first node runs it."""
    cluster = next((c for c in clusters if network.ipam and c.name == network.ipam.cluster), None)
    if cluster is not None and cluster.nodes:
        (network,) = networks_for_node([network], clusters, cluster.nodes[0].name)
    try:
        return list(plan(network, EXAMPLE_POD, "ADD").operations)
    except PlanError:
        return []


def _node_changes(
    node: str,
    old_networks: Sequence[Network],
    old_clusters: Sequence[Cluster],
    new_networks: Sequence[Network],
    new_clusters: Sequence[Cluster],
    *,
    stranded: Sequence[Stranded],
) -> list[Change]:
    home = next(c.name for c in [*new_clusters, *old_clusters] if c.node(node))
    old_cluster = next((c for c in old_clusters if c.name == home), None)
    new_cluster = next((c for c in new_clusters if c.name == home), None)
    if any(c is not None and c.membership.dynamic for c in (old_cluster, new_cluster)):
        return _pin_changes(node, old_cluster, new_cluster, stranded)
    old_ops = _node_ops(node, old_networks, old_clusters)
    new_ops = _node_ops(node, new_networks, new_clusters)
    cluster = next((c.name for c in [*new_clusters, *old_clusters] if c.node(node)), "?")
    scope = f"node {node} of cluster {cluster}"
    if old_ops is None or new_ops is None:
        action = "added" if old_ops is None else "removed"
        effect = (
            (
                f"`netc apply --node {node}` sets it up; the other nodes route to it "
                "after their apply"
            )
            if old_ops is None
            else ("the other nodes remove their routes to it at their next apply")
        )
        return [Change(scope, "node", action, node, None, None, effect)]
    return [pods.change(scope) for pods in stranded if pods.node == node] + _operation_changes(
        scope,
        "node",
        old_ops,
        new_ops,
        effect=f"{AT_ONCE}, with `netc apply --node {node}`",
        relevant=lambda op: op.kind != Kind.NODE_PRUNE,
        breaks=lambda op: _breaks(op, stranded),
    )


def _membership_settings(cluster: Cluster) -> dict[str, str]:
    """`membership.source = static` and the others that are set, defaults included.

    So a move from the default shows what it was.
    """
    membership = cluster.membership
    return {
        f"membership.{f.name}": _show(list(value) if isinstance(value, tuple) else value)
        for f in datatypes.fields(membership)
        if f.name != "span" and (value := getattr(membership, f.name)) not in (None, ())
    }


def _pin_changes(
    node: str, old: Cluster | None, new: Cluster | None, stranded: Sequence[Stranded]
) -> list[Change]:
    """A node of a dynamic cluster: its pin, not its node plan, which follows the members.

    Its routes and tunnel entries depend on the members its source lists at
    run time: what the revision changes is the block the name is pinned to.
    """
    cluster = new or old
    assert cluster is not None
    scope = f"node {node} of cluster {cluster.name}"
    before, after = _listed(node, old), _listed(node, new)
    changes = [pods.change(scope, by_agent=True) for pods in stranded if pods.node == node]
    if before == after:
        return changes
    effect = (
        "the agents read it once the new configuration reaches them; the node's routes "
        "follow the members its cluster's source lists"
    )
    span = next((n.span for n in new.nodes if n.name == node), None) if new else None
    was = next((n.span for n in old.nodes if n.name == node), None) if old else None
    if before is None or after is None:
        return [
            *changes,
            Change(
                scope,
                "node",
                _action(before, after),
                f"{node} {before or after}",
                None,
                None,
                effect,
                span,
                was,
            ),
        ]
    return [*changes, Change(scope, "node", "changed", node, before, after, effect, span, was)]


def _listed(node: str, cluster: Cluster | None) -> str | None:
    """How a revision lists a node: pinned to a block, or a static member with its subnets."""
    found = cluster.node(node) if cluster else None
    if cluster is None or found is None:
        return None
    where = (
        f"block {found.block}" if found.block is not None else ", ".join(map(str, found.subnets))
    )
    return f"pinned to {where}" if cluster.membership.dynamic else f"listed with {where}"


def _node_ops(
    node: str, networks: Sequence[Network], clusters: Sequence[Cluster]
) -> list[Operation[Params]] | None:
    cluster = next((c for c in clusters if c.node(node)), None)
    if cluster is None:
        return None
    built = networks_for_node(networks, clusters, node)
    return list(node_plan(cluster, node, built).operations)


def _operation_changes(
    scope: str,
    layer: str,
    old: Sequence[Operation[Params]],
    new: Sequence[Operation[Params]],
    *,
    effect: str,
    relevant: Callable[[Operation[Params]], bool],
    breaks: Callable[[Operation[Params]], str | None] = lambda op: None,
) -> list[Change]:
    """Operations added, removed or changed.

    `breaks` says what an old operation's going or changing costs running pods.
    """
    before = {(op.kind, op.target): op for op in old if relevant(op)}
    after = {(op.kind, op.target): op for op in new if relevant(op)}
    changes = []
    for key in [k for k in after if k not in before]:
        changes.append(
            Change(scope, layer, "added", after[key].summary, None, None, effect, after[key].span)
        )
    for key in [k for k in before if k not in after]:
        changes.append(
            Change(
                scope,
                layer,
                "removed",
                before[key].summary,
                None,
                None,
                effect,
                was=before[key].span,
                breaks=breaks(before[key]),
            )
        )
    for key in [k for k in after if k in before]:
        if before[key].params != after[key].params:
            changes.append(
                Change(
                    scope,
                    layer,
                    "changed",
                    after[key].summary,
                    before[key].summary,
                    after[key].summary,
                    effect,
                    after[key].span,
                    before[key].span,
                    breaks(before[key]),
                )
            )
    return changes


def _setting_changes(old: Network, new: Network) -> Iterator[tuple[str, str | None, str | None]]:
    before = dict(_flatten(_without_spans(ir_codec.encode(old))))
    after = dict(_flatten(_without_spans(ir_codec.encode(new))))
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            yield key, before.get(key), after.get(key)


def _without_spans(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [_without_spans(v) for v in value]
    return value


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Settings as `bridge.mtu = 1500`; an item of a list of objects is one setting."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield f"{prefix}[{_label(item, index)}]", _show(item)
    else:
        yield prefix, _show(value)


def _label(item: Mapping[str, Any], index: int) -> str:
    for key in ("name", "cidr", "dst", "first", "names"):
        if key in item:
            return _show(item[key])
    return str(index)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={_show(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _action(old: str | None, new: str | None) -> str:
    if old is None:
        return "added"
    return "removed" if new is None else "changed"


_KEY_PART = re.compile(r"(\w+)(?:\[([^\]]*)\])?")
"""One step of a setting's key: `deny[2222]` is the item labelled 2222 of `deny`."""


def _span(network: Network, key: str) -> Span | None:
    """The span of the innermost object of `network` that holds a setting.

    `hostport.deny[2222]` is the line of `deny 2222`; the network's span at worst.
    """
    span = network.span
    part: object = network
    for name, label in _KEY_PART.findall(key):
        part = getattr(part, name, None)
        if label and isinstance(part, tuple):
            part = next(
                (
                    item
                    for index, item in enumerate(part)
                    if _label(_without_spans(ir_codec.encode(item)), index) == label
                ),
                None,
            )
        if part is None:
            break
        span = getattr(part, "span", None) or span
    return span


def render_text(changes: Sequence[Change], against: str) -> str:
    """The change plan for people: by scope, one line a change, what it means and when.

    What breaks running pods is marked `!` and announced first.
    """
    lines = [f"netc plan: changes against {against}"]
    breaking = sum(bool(c.breaks) for c in changes)
    if breaking:
        lines += [
            "",
            f"WARNING: {_count(breaking)} break running pods (marked !): they keep "
            "what they were given until re-created,",
            "and the new revision no longer "
            "serves it. Drain each node and re-create its pods once it has applied.",
        ]
    scope = None
    for change in changes:
        if change.scope != scope:
            scope = change.scope
            lines += ["", scope]
        lines.append(
            f"{'!' if change.breaks else ' '} {SYMBOLS[change.action]} {_describe(change)}"
        )
        detail = "; ".join(filter(None, [change.effect, _where(change)]))
        if detail:
            lines.append(f"      {detail}")
        if change.breaks:
            lines.append(f"      BREAKS RUNNING PODS: {change.breaks}")
    lines += ["", summary(changes)]
    return "\n".join(lines) + "\n"


def _where(change: Change) -> str:
    """The new revision's line, or for what it removed the old revision's."""
    if change.span and change.span.line:
        return str(change.span)
    return f"was {change.was}" if change.was and change.was.line else ""


def _count(number: int) -> str:
    return f"{number} change" + ("s" if number != 1 else "")


SYMBOLS = {"added": "+", "removed": "-", "changed": "~"}


def _describe(change: Change) -> str:
    if change.layer == "running pods":
        return f"{change.subject}: {change.old} -> {change.new}"
    if change.layer in ("setting", "default"):
        return f"{change.subject}: {change.old or '(none)'} -> {change.new or '(none)'}"
    prefix = "pod: " if change.layer == "pods" else ""
    if change.action == "changed" and change.old != change.new:
        return f"{prefix}{change.new} (was: {change.old})"
    return f"{prefix}{change.subject}"


def summary(changes: Sequence[Change]) -> str:
    """One line: how many changes, and how many need pods re-created to reach them."""
    if not changes:
        return "No changes: the nodes would get what they have."
    later = sum(c.effect == NEW_PODS for c in changes)
    breaking = sum(bool(c.breaks) for c in changes)
    return (
        _count(len(changes))
        + (f"; {later} reach only pods created from now on" if later else "")
        + (f"; {breaking} break running pods (marked !)" if breaking else "")
        + "."
    )


def render_github(changes: Sequence[Change]) -> str:
    """GitHub Actions workflow commands: each change annotates its line in the pull request."""
    lines = []
    for change in changes:
        where = ""
        if change.span and change.span.line:  # what was removed has no line to annotate
            where = f" file={change.span.file},line={change.span.line}"
        text = f"{change.scope}: {_describe(change)}" + "".join(
            f" ({part})" for part in [change.effect, "" if where else _where(change)] if part
        )
        if change.breaks:
            text += f" -- breaks running pods: {change.breaks}"
        lines.append(f"::{'warning' if change.breaks else 'notice'}{where}::{text}")
    return "\n".join(lines) + ("\n" if lines else "")


def document(changes: Sequence[Change], against: str) -> dict[str, Any]:
    """The change plan for tools."""
    return {
        "format_version": CHANGES_FORMAT,
        "against": against,
        "changes": [c.to_json() for c in changes],
        "summary": summary(changes),
        "breaking_count": sum(bool(c.breaks) for c in changes),
    }
