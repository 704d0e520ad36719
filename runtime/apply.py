"""`netc apply --node`: a node's plan made true without any pod, and compared with a node.

The node-scoped plan (`compiler.planner.node`) holds what every pod of the
node's networks shares -- forwarding, bridges, gateway addresses, NAT -- and,
on a cluster, the routes, VXLAN device and entries towards every peer, then
the removal of what netc owns there and the plan no longer lists.  Applying
it first checks that nothing netc does not own stands in the way of any
operation -- flannel's devices, say, which have netc's defaults -- and
refuses before any change if something does; then it ensures each operation
in order.  Nothing is rolled back on a later failure, since every operation
is node-scoped and the next apply carries on from where this one stopped.

An apply holds the lock of every network it touches (the one a pod's ADD of
that network holds), so the two never set up the same bridge or NAT chains
at once.  Both functions work inside a named network namespace (the tests'
simulated nodes), or in this process's own when none is given.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

from compiler.datatypes import frozen
from compiler.ir import Network
from compiler.planner.ops import Kind, Observation, Operation, Params, Plan
from runtime import executor
from runtime.files import locked
from runtime.host import Host
from runtime.netns import node_namespace


@frozen
class AppliedChange:
    """An operation that had to change something, and what it said it did (a prune's removals)."""

    op: Operation[Params]
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """How `netc apply` prints the change.

        One `-` line per object a prune removed, else one `+` line with what
        the operation said it did.
        """
        if self.op.kind == Kind.NODE_PRUNE:
            return [f"- {note}" for note in self.notes]
        return [f"+ {self.op.summary}" + (f" ({'; '.join(self.notes)})" if self.notes else "")]

    def to_json(self) -> dict[str, object]:
        """The machine form of `netc apply --format json`."""
        return {
            "kind": self.op.kind.value,
            "target": self.op.target,
            "summary": self.op.summary,
            "notes": list(self.notes),
            "source": self.op.span.to_json() if self.op.span else None,
        }


def apply_node(
    plan: Plan,
    networks: Sequence[Network],
    node_netns: str | None = None,
    changed_now: Callable[[AppliedChange], None] | None = None,
    thorough: bool = True,
) -> list[AppliedChange]:
    """Ensure every operation of a node's plan; the changes, in plan order.

    Not `thorough`, it trusts the NAT's shape -- its chains, their rule
    counts and the jumps to them -- as a pod's ADD does, instead of asking
    iptables for every rule (`executor.Run.thorough`).

    First, before any change, what stands in the way of any operation (a
    device of a planned name that netc does not own, another VXLAN device
    holding the planned VNI and port, a route netc did not add) is refused:
    `executor.Blocked`, naming each obstacle and its fix.  `changed_now`
    hears of each change as it is made.  A failure after that raises
    `executor.OperationFailed` and undoes nothing: the changes made before it
    stay (each is node-scoped and wanted), and the next apply carries on.
    """
    with node_namespace(node_netns), _networks_locked(networks):
        host = Host(None)
        try:
            run = executor.Run(host, plan, thorough=thorough)
            # One run for both: the apply reuses the check's route dump, which the handlers
            # keep current (the check's cost: docs/benchmarks.md, a cluster of 1000 nodes).
            executor.refuse_blocked(run)

            def change(op: Operation[Params]) -> AppliedChange:
                return AppliedChange(op, tuple(run.notes_of(op)))

            tell = None if changed_now is None else (lambda op: changed_now(change(op)))
            return [change(op) for op in executor.apply(run, tell)]
        finally:
            host.close()


def observe_node(plan: Plan, node_netns: str | None = None) -> list[Observation]:
    """What the node has for each operation of its plan (`netc plan --live --node`), read-only.

    Observing takes no lock: it changes nothing a concurrent ADD could trip over.
    """
    with node_namespace(node_netns):
        host = Host(None)
        try:
            return executor.observe(executor.Run(host, plan))
        finally:
            host.close()


@contextlib.contextmanager
def _networks_locked(networks: Sequence[Network]) -> Iterator[None]:
    """Every network's lock, in path order (two applies never wait for each other in a circle)."""
    paths = sorted({os.path.join(n.state_dir, n.name, "lock") for n in networks})
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(locked(path))
        yield
