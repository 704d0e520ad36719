"""The attachment record as a plan operation: written first by ADD, removed last by DEL."""

from __future__ import annotations

import os

from compiler.planner.ops import Kind, Observation, Operation
from runtime.ops.base import IN_PLACE_NOW, Run, missing


class RecordHandler:
    """Writes `run.record` (the pod's context; bindings are added as they are made)."""

    def ensure(self, op: Operation, run: Run) -> bool:
        run.attachment[1].save()
        return True

    def remove(self, op: Operation, run: Run) -> None:
        run.attachment[1].delete()

    def observe(self, op: Operation, run: Run) -> Observation:
        return IN_PLACE_NOW if os.path.exists(op.params["path"]) else missing()


HANDLERS = {Kind.STATE_RECORD: RecordHandler()}
