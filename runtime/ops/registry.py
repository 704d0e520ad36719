"""Which handler carries out each kind of operation.

Every `Kind` the planner can emit has exactly one handler here; a non-root
test keeps the two vocabularies equal.
"""

from __future__ import annotations

from compiler.planner.ops import Kind, Operation
from runtime.ops import hostports, ipam, kernel, links, nat, peers, records, shaping
from runtime.ops.base import Handler

HANDLERS: dict[Kind, Handler] = {
    kind: handler
    for module in (hostports, ipam, kernel, links, nat, peers, records, shaping)
    for kind, handler in module.HANDLERS.items()
}


def handler_for(op: Operation) -> Handler:
    """The handler of an operation's kind."""
    return HANDLERS[op.kind]
