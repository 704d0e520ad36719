"""Executing a plan: each operation through the handler of its kind, in order.

    apply    ADD: ensure every operation; if one fails, remove what this call
             applied (attachment-owned, in reverse) and raise -- a failed ADD
             leaves nothing behind
    remove   DEL: remove every operation, carrying on past failures (a DEL is
             best effort), then report all of them
    observe  CHECK and `netc plan --live`: what the kernel has for each one

Foreign errors (netlink, iptables-restore, the file system) are translated
here into `OperationFailed`, which names the operation and its source line.
Values only known at run time -- the reserved addresses -- are filled into
each operation just before it runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from compiler.ir import Network
from compiler.planner.context import PodContext
from compiler.planner.ops import (
    ABSENT,
    CREATE,
    DIFFERENT,
    REMOVE,
    Observation,
    Operation,
    Plan,
)
from runtime.host import Host, SandboxGone
from runtime.netns import NetnsError
from runtime.programs import ProgramFailed
from runtime.record import Record

CODE_OPERATION_FAILED = 100


class OperationFailed(Exception):
    """An operation the kernel or the system refused; `code` is the CNI error code."""

    def __init__(self, op: Operation, cause: str, code: int = CODE_OPERATION_FAILED) -> None:
        where = f" ({op.span})" if op.span else ""
        super().__init__(f"{op.summary}: {cause}{where}")
        self.op = op
        self.code = code


class Refused(Exception):
    """A handler's refusal that carries its own CNI error code (a taken port, no address)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Run:
    """Everything the handlers of one CNI call share."""

    host: Host
    network: Network
    pod: PodContext
    plan: Plan
    record: Record
    previous: Record | None = None
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def bindings(self) -> dict[str, str]:
        """Values bound so far (`{ipv4.ip}` ...): the record's, which keeps them for DEL."""
        return self.record.bindings

    def bind(self, prefix: str, **values: str) -> None:
        """Make `{prefix.name}` placeholders resolvable, and remember them in the record."""
        for name, value in values.items():
            self.record.bindings[f"{prefix}.{name}"] = value


def apply(run: Run) -> None:
    """Ensure every operation of the plan; on failure undo this call's work and raise."""
    from runtime.ops import handler_for

    applied: list[Operation] = []
    for op in run.plan.operations:
        current = op.resolved(run.bindings)
        try:
            handler_for(current).ensure(current, run)
        except Exception as error:
            failure = _translate(current, error)
            _roll_back(applied, run)
            raise failure from error
        applied.append(current)


def _roll_back(applied: list[Operation], run: Run) -> None:
    from runtime.ops import handler_for

    for op in reversed(applied):
        if not op.removed_by_del:
            continue
        try:
            handler_for(op).remove(op.with_action(REMOVE), run)
        except Exception as error:  # keep undoing the rest
            print(f"netc-cni: rollback of {op.summary} failed: {error}", file=sys.stderr)


def remove(run: Run) -> list[OperationFailed]:
    """Remove every operation of a DEL plan; return the failures, having tried them all."""
    from runtime.ops import handler_for

    failures = []
    for op in run.plan.operations:
        current = op.resolved(run.bindings)
        try:
            handler_for(current).remove(current, run)
        except SandboxGone:
            continue
        except Exception as error:  # a DEL carries on, then reports
            failures.append(_translate(current, error))
    return failures


def observe(run: Run) -> list[Observation]:
    """What the kernel has for each operation of the plan."""
    from runtime.ops import handler_for

    seen = []
    for op in run.plan.operations:
        current = op.resolved(run.bindings)
        try:
            found = handler_for(current).observe(current, run)
            seen.append(_for_removal(found) if op.action == REMOVE else found)
        except SandboxGone:
            seen.append(Observation(ABSENT, "the pod's network namespace is gone"))
        except Exception as error:
            raise _translate(current, error) from error
    return seen


def _for_removal(found: Observation) -> Observation:
    """For a DEL, an object still there is a pending change and a missing one is done."""
    if found.state == ABSENT:
        return found
    if found.state == CREATE:
        return Observation(ABSENT, "already gone")
    return Observation(DIFFERENT, "present; DEL removes it")


def _translate(op: Operation, error: Exception) -> OperationFailed:
    if isinstance(error, OperationFailed):
        return error
    if isinstance(error, Refused):
        return OperationFailed(op, str(error), error.code)
    if isinstance(error, OSError | NetnsError | SandboxGone | ProgramFailed):
        return OperationFailed(op, str(error))
    return OperationFailed(op, f"{type(error).__name__}: {error}")

