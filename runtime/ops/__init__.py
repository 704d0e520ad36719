"""Handlers: how each kind of operation is ensured, removed and observed.

One module per area (links and addresses, sysctls, IPAM, NAT, host ports,
traffic shaping, records); `handler_for` maps an operation's kind to its
handler.  Handlers are idempotent: `ensure` repairs what differs and leaves
what is right alone, `remove` tolerates absence.
"""

from __future__ import annotations

from functools import cache

from compiler.planner.ops import ABSENT, CREATE, DIFFERENT, IN_PLACE, Observation, Operation

IN_PLACE_NOW = Observation(IN_PLACE)
NOTHING_TO_KEEP = Observation(ABSENT, "a one-shot flush leaves nothing to observe")


def missing(detail: str | None = None) -> Observation:
    """The object does not exist yet."""
    return Observation(CREATE, detail)


def differs(detail: str) -> Observation:
    """The object exists but not as planned; `detail` says how."""
    return Observation(DIFFERENT, detail)


def existing_link(run, where: str, name: str):
    """The link `name` in the node or the pod; a missing one is a refusal naming it."""
    from runtime.executor import CODE_OPERATION_FAILED, Refused

    link = run.host.link(where, name)
    if link is None:
        raise Refused(f"link {name} does not exist", CODE_OPERATION_FAILED)
    return link


class Handler:
    """Base of all handlers; node-scoped kinds and kinds undone by a parent keep `remove`."""

    def ensure(self, op: Operation, run) -> None:
        """Bring the object to the planned state."""
        raise NotImplementedError

    def remove(self, op: Operation, run) -> None:
        """Remove the object, tolerating its absence (default: nothing to do)."""

    def observe(self, op: Operation, run) -> Observation:
        """Compare the object with the plan."""
        raise NotImplementedError


@cache
def registry() -> dict[str, Handler]:
    """Every handler by kind (imports all handler modules the first time)."""
    from runtime.ops import hostports, ipam, kernel, links, nat, records, shaping

    modules = (hostports, ipam, kernel, links, nat, records, shaping)
    return {kind: handler for module in modules for kind, handler in module.HANDLERS.items()}


def handler_for(op: Operation) -> Handler:
    """The handler of an operation's kind."""
    return registry()[op.kind]
