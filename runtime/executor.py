"""Executing a plan: each operation through the handler of its kind, in order.

    apply    ADD: ensure every operation; if one fails, remove what this call
             applied (attachment-owned, in reverse) and raise -- a failed ADD
             leaves nothing behind
    remove   DEL: remove every operation, carrying on past failures (a DEL is
             best effort), then report all of them; a DEL that may answer
             first leaves its slowest removals for after the answer
             (remove_after_answer)
    observe  CHECK and `netc plan --live`: what the kernel has for each one
    refuse_blocked
             before a node's apply: what stands in the way of any operation
             (a device of a planned name that is not netc's, a VXLAN device
             holding the planned VNI and port, a route netc did not add),
             refused before anything is changed

An operation whose work is a program (iptables-restore) may start it and
be finished later (`Run.later`): the operations after it run meanwhile, and
every call finishes them all -- and, on a failure, before undoing anything.

Foreign errors (netlink, iptables-restore, the file system) are translated
here into `OperationFailed`, which names the operation and its source line.
Values only known at run time -- the reserved addresses -- are filled into
each operation just before it runs.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from compiler.errors import Code, NetcError
from compiler.planner.ops import Action, Observation, Operation, Params, Scope, State
from runtime.host import SandboxGone
from runtime.ops.base import Blockable, CutsOff, Run, Settles
from runtime.ops.registry import handler_for

__all__ = [
    "Blocked",
    "OperationFailed",
    "Run",
    "apply",
    "observe",
    "refuse_blocked",
    "remove",
    "remove_after_answer",
]


class OperationFailed(NetcError):
    """An operation the kernel or the system refused, named with its source line."""

    def __init__(
        self, op: Operation[Params], cause: str, code: Code = Code.OPERATION_FAILED
    ) -> None:
        where = f" ({op.span})" if op.span else ""
        super().__init__(f"{op.summary}: {cause}{where}", code)
        self.op = op


class Blocked(NetcError):
    """Operations that something netc does not own stands in the way of: nothing was changed."""

    def __init__(self, blocked: Sequence[tuple[Operation[Params], str]]) -> None:
        lines = [
            f"{op.summary}: {obstacle}" + (f" ({op.span})" if op.span else "")
            for op, obstacle in blocked
        ]
        count = f"{len(lines)} operation{'s' if len(lines) > 1 else ''}"
        super().__init__(
            f"refused before any change: {count} of the plan "
            f"{'are' if len(lines) > 1 else 'is'} blocked by what the node has\n"
            + "\n".join(f"  {line}" for line in lines),
            Code.OPERATION_FAILED,
        )
        self.blocked = tuple(blocked)


def refuse_blocked(run: Run) -> None:
    """Raise `Blocked` naming every operation something netc does not own stands in the way of.

    Asked before the first change of a node's apply: a plan that could not
    be carried out to its end is not started, so a node with another
    plugin's devices (flannel's flannel.1) is left exactly as it was.  Only
    the handlers that can be blocked are asked (`Blockable`): a few link
    lookups and the route dump, not a whole observation.
    """
    blocked = []
    for op in run.plan.operations:
        current = op.resolved(run.bindings)
        handler = handler_for(current)
        if isinstance(handler, Blockable):
            try:
                obstacle = handler.obstacle(current, run)
            except Exception as error:
                raise _translate(current, error) from error
            if obstacle:
                blocked.append((current, obstacle))
    if blocked:
        raise Blocked(blocked)


def apply(
    run: Run, changed_now: Callable[[Operation[Params]], None] | None = None
) -> list[Operation[Params]]:
    """Ensure every operation of the plan, and return those that changed something.

    `changed_now` hears of each such operation as soon as it changed something
    (`netc apply` prints it then, so a failure later leaves no change unsaid).
    On a failure this call's attachment-owned work is undone and the failure raised.
    A pod's node-scoped operations are ensured under the network's lock, and
    only when one of them is not in place (see `_in_place`).
    """
    applied: list[Operation[Params]] = []
    changed: list[Operation[Params]] = []
    for shared, group in itertools.groupby(
        run.plan.operations, lambda op: run.shared_lock is not None and op.scope == Scope.NODE
    ):
        operations = list(group)
        if not shared:
            _ensure(run, operations, applied, changed, changed_now)
        elif not all(_in_place(op, run) for op in operations):
            with run.sharing():
                _ensure(run, operations, applied, changed, changed_now)
        else:
            applied += operations
    failed = _finished(run)
    if failed:
        _fail(run, applied, *failed[0])
    return changed


def _ensure(
    run: Run,
    operations: Sequence[Operation[Params]],
    applied: list[Operation[Params]],
    changed: list[Operation[Params]],
    changed_now: Callable[[Operation[Params]], None] | None,
) -> None:
    """Ensure `operations` in order; each goes to `applied`, those that changed to `changed`."""
    for op in operations:
        current = op.resolved(run.bindings)
        try:
            if handler_for(current).ensure(current, run):
                changed.append(current)
                if changed_now is not None:
                    changed_now(current)
        except Exception as error:
            # The failing operation may have done part of its work (a
            # reservation made, then the disk full): it is undone too.
            _fail(run, [*applied, current], current, error)
        applied.append(current)


def _in_place(op: Operation[Params], run: Run) -> bool:
    """Whether a node-scoped object needs no change, asked without the network's lock.

    What every pod of the network shares is set up by the first ADD and then
    only read: checking it needs no lock, and the lock is taken (and each
    operation ensured again under it) only when something is missing --
    otherwise two first ADDs would both create the bridge or the NAT chains.
    A failed check is left to the ensure under the lock, which reports it.
    """
    current = op.resolved(run.bindings)
    handler = handler_for(current)
    try:
        if isinstance(handler, Settles):
            return handler.settled(current, run)
        return handler.observe(current, run).state == State.IN_PLACE
    except Exception:  # the ensure under the lock says what is wrong
        return False


def _fail(
    run: Run, applied: Sequence[Operation[Params]], op: Operation[Params], error: Exception
) -> NoReturn:
    """Undo what this call applied, then raise `op`'s failure.

    Programs still running are waited for first, so that the undoing finds
    whatever they did.
    """
    failure = _translate(op, error)
    _finished(run)
    _roll_back(applied, run)
    raise failure from error


def _finished(run: Run) -> list[tuple[Operation[Params], Exception]]:
    """Finish every operation still running beside the call (`Run.later`); the failures."""
    failed = []
    while run.completions:
        op, finish = run.completions.pop(0)
        try:
            finish()
        except Exception as error:  # finish the others all the same
            failed.append((op, error))
    return failed


def _finish(run: Run) -> list[OperationFailed]:
    """`_finished`, its failures as each operation's `OperationFailed`."""
    return [_translate(op, error) for op, error in _finished(run)]


def _roll_back(applied: Sequence[Operation[Params]], run: Run) -> None:
    for op in reversed(applied):
        if not op.removed_by_del:
            continue
        try:
            handler_for(op).remove(op.with_action(Action.REMOVE), run)
        except Exception as error:  # keep undoing the rest
            print(f"netc-cni: rollback of {op.summary} failed: {error}", file=sys.stderr)
    _finished(run)


def remove(run: Run) -> list[OperationFailed]:
    """Remove every operation of a DEL plan; return the failures, having tried them all.

    A run that may answer first (`Run.answer_first`) stops at the first
    removal that waits for the kernel (`CutsOff`) if all went well so far:
    it cuts that object off and leaves the rest in `run.after_answer`.
    """
    operations = list(run.plan.operations)
    failures: list[OperationFailed] = []
    for position, op in enumerate(operations):
        current = op.resolved(run.bindings)
        if run.answer_first and _cut_off(current, run, failures):
            run.after_answer = operations[position:]
            return failures
        failures += _removed(current, run)
    return failures + _finish(run)


def remove_after_answer(run: Run) -> list[OperationFailed]:
    """The removals `remove` left for after the answer; their failures, having tried them all."""
    operations, run.after_answer = run.after_answer, []
    failures = [f for op in operations for f in _removed(op.resolved(run.bindings), run)]
    return failures + _finish(run)


def _removed(op: Operation[Params], run: Run) -> list[OperationFailed]:
    """Remove one operation's object; its failure, if any (a DEL carries on past it)."""
    try:
        handler_for(op).remove(op, run)
    except SandboxGone:
        pass
    except Exception as error:
        return [_translate(op, error)]
    return []


def _cut_off(op: Operation[Params], run: Run, failures: list[OperationFailed]) -> bool:
    """Whether the DEL answers before removing `op`: its object cut off, nothing failed.

    Programs still running are waited for then (the answer must say how
    they went), and what they did wrong is added to `failures`.  A failure
    so far, or in the cutting off, keeps the whole DEL before the answer, as
    a DEL that cannot answer first runs it.
    """
    handler = handler_for(op)
    if failures or not isinstance(handler, CutsOff):
        return False
    try:
        if not handler.cut_off(op, run):
            return False
    except Exception:  # its removal, before the answer, says what is wrong
        return False
    failures += _finish(run)
    return not failures


def observe(run: Run) -> list[Observation]:
    """What the kernel has for each operation of the plan."""
    seen = []
    for op in run.plan.operations:
        current = op.resolved(run.bindings)
        try:
            found = handler_for(current).observe(current, run)
            seen.append(_for_removal(found) if op.action == Action.REMOVE else found)
        except SandboxGone:
            seen.append(Observation(State.ABSENT, "the pod's network namespace is gone"))
        except Exception as error:
            raise _translate(current, error) from error
    return seen


def _for_removal(found: Observation) -> Observation:
    """For a DEL, an object still there is a pending change and a missing one is done."""
    if found.state == State.ABSENT:
        return found
    if found.state == State.BLOCKED:
        return Observation(State.ABSENT, "nothing of netc's: " + (found.detail or ""))
    if found.state == State.CREATE:
        return Observation(State.ABSENT, "already gone")
    return Observation(State.DIFFERENT, "present; DEL removes it")


def _translate(op: Operation[Params], error: Exception) -> OperationFailed:
    """Any failure as an `OperationFailed` naming the operation; a netc error keeps its code.

    A file that could not be written (a full or read-only state directory)
    is CNI's I/O failure; the kernel refusing a request is an operation failure.
    """
    if isinstance(error, OperationFailed):
        return error
    if isinstance(error, NetcError):
        return OperationFailed(op, str(error), error.code)
    if isinstance(error, OSError) and error.filename:
        return OperationFailed(op, str(error), Code.IO_FAILURE)
    if isinstance(error, OSError):
        return OperationFailed(op, str(error))
    return OperationFailed(op, f"{type(error).__name__}: {error}")
