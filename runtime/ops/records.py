"""The attachment record as a plan operation: written first by ADD, removed last by DEL."""

from __future__ import annotations

import os

from compiler.planner.ops import Observation, Operation
from compiler.planner.params import StateRecordParams
from runtime.ops.base import IN_PLACE_NOW, Handler, Run, missing


class StateRecordHandler(Handler[StateRecordParams]):
    """Writes `run.record` (the pod's context; bindings are added as they are made)."""

    params = StateRecordParams

    def ensure(self, op: Operation[StateRecordParams], run: Run) -> bool:
        run.attachment[1].save()
        return True

    def remove(self, op: Operation[StateRecordParams], run: Run) -> None:
        run.attachment[1].delete()

    def observe(self, op: Operation[StateRecordParams], run: Run) -> Observation:
        return IN_PLACE_NOW if os.path.exists(op.params.path) else missing()


HANDLERS = (StateRecordHandler(),)
