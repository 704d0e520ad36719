"""The planner's entry point: a network, a pod and a CNI command to a `Plan`.

ADD is `compiler.planner.attach`.  DEL is derived from it, never written
separately: the attachment-owned operations of the ADD, in reverse order,
each turned into a removal -- so what a DEL undoes is by construction what
an ADD did.  One exception to the order (`DEL_FIRST`): the pod's host
ports go first -- its DNAT, the flush of the conntrack entries it made,
its claims -- so that no new connection is steered to a pod being torn
down, and the iptables-restore removing the DNAT runs (`Run.later`) while
the kernel deletes the pod's links, which waits for an RCU grace period.  CHECK
verifies every operation of the ADD, node-scoped ones included, except the
one-shot flushes of conntrack and neighbour entries, which leave nothing to
verify.
"""

from __future__ import annotations

from compiler.errors import Code, NetcError
from compiler.ir import Network
from compiler.planner.attach import attach_operations
from compiler.planner.context import PodContext
from compiler.planner.ops import Action, Attachment, Kind, Operation, Params, Plan

COMMANDS = ("ADD", "DEL", "CHECK")
ONE_SHOT = (Kind.CONNTRACK_FLUSH, Kind.NEIGHBOUR_FORGET)
"""Operations that leave nothing to verify: CHECK skips them."""
DEL_FIRST = (Kind.IPTABLES_ATTACHMENT, Kind.CONNTRACK_FLUSH, Kind.HOSTPORT_CLAIM)
"""What a DEL removes before everything else, in this order."""


class PlanError(NetcError):
    """The network cannot be planned by netc (e.g. a passthrough main plugin)."""

    code = Code.BAD_CONFIG


def plan(network: Network, pod: PodContext, command: str) -> Plan:
    """The ordered operations of `command` for `pod` on `network`."""
    if network.bridge is None:
        raise PlanError(
            f"network {network.name} uses plugin "
            f"{network.plugin.type if network.plugin else '?'}; netc's runtime "
            "executes bridge networks (build it with --target reference)"
        )
    if command not in COMMANDS:
        raise PlanError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    adding = attach_operations(network, pod, enforce=command != "DEL")
    attachment = Attachment(
        network.name, pod.container_id, pod.ifname, pod.netns, pod.namespace, pod.pod_name
    )
    return Plan(command, attachment, tuple(_for_command(adding, command)), network.sources)


def _for_command(adding: list[Operation[Params]], command: str) -> list[Operation[Params]]:
    if command == "ADD":
        return adding
    if command == "DEL":
        removals = [op.with_action(Action.REMOVE) for op in reversed(adding) if op.removed_by_del]
        return sorted(removals, key=_del_rank)
    return [op.with_action(Action.CHECK) for op in adding if op.kind not in ONE_SHOT]


def _del_rank(op: Operation[Params]) -> int:
    return DEL_FIRST.index(op.kind) if op.kind in DEL_FIRST else len(DEL_FIRST)
