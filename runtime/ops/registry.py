"""Which handler carries out each kind of operation.

Each handler names its kind's parameters' type (`Handler.params`), whose
`KIND` is its key here: a handler is typed for the operations it is given.
Every `Kind` the planner can emit has exactly one handler; a non-root test
keeps the two vocabularies equal.
"""

from __future__ import annotations

from typing import Any, TypeVar

from compiler.planner.ops import Kind, Operation, Params
from runtime.ops import hostports, ipam, kernel, links, nat, peers, records, shaping
from runtime.ops.base import Handler

P = TypeVar("P", bound=Params)

HANDLERS: dict[Kind, Handler[Any]] = {
    handler.params.KIND: handler
    for module in (hostports, ipam, kernel, links, nat, peers, records, shaping)
    for handler in module.HANDLERS
}


def handler_for(op: Operation[P]) -> Handler[P]:
    """The handler of an operation's kind, typed for its parameters."""
    handler: Handler[P] = HANDLERS[op.kind]
    return handler
