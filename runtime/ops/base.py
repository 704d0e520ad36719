"""The handlers' vocabulary: the run of one call, the handler protocol, refusals, observations.

The executor (runtime/executor.py) and every handler module (runtime/ops/*)
depend on this module and on nothing of each other, so the executor can
import the registry at its top and the handlers can name the `Run` they are
given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from compiler.datatypes import field, mutable
from compiler.errors import Code, NetcError
from compiler.planner.context import PodContext
from compiler.planner.ops import Observation, Operation, Params, Plan, State, Where
from runtime.attachment_records import Record
from runtime.host import Host
from runtime.netlink.rtnl import Link


class OperationRefused(NetcError):
    """A handler's refusal: the object cannot be brought to the planned state."""

    code = Code.OPERATION_FAILED


@mutable
class Run:
    """Everything the handlers of one call share: a pod's CNI call, or a node's apply.

    A node's apply has no pod and no record; its operations need neither.
    `shared_lock` is how a pod's call excludes the network's other calls
    while it changes what they share (the bridge, the NAT chains); a node's
    apply holds that lock already and has none.
    """

    host: Host
    plan: Plan
    pod: PodContext | None = None
    record: Record | None = None
    previous: Record | None = None
    memo: dict[Any, Any] = field(default_factory=dict)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """What operations did beyond their summary (what a prune removed), for `netc apply`."""
    completions: list[tuple[Operation[Params], Callable[[], None]]] = field(default_factory=list)
    """How to finish the operations whose work still runs beside the call (see `later`)."""
    shared_lock: Callable[[], contextlib.AbstractContextManager[object]] | None = None
    thorough: bool = True
    """A node's apply that checks each node-scoped object whole (every NAT rule, a program
    each); without, it trusts the quicker test a pod's call makes (`Settles`)."""
    answer_first: bool = False
    """A DEL that may answer the runtime before its slowest removals (see `CutsOff`)."""
    after_answer: list[Operation[Params]] = field(default_factory=list)
    """The removals a DEL left for after its answer (`executor.remove_after_answer`)."""

    @contextlib.contextmanager
    def sharing(self) -> Iterator[None]:
        """Held around a change to node-scoped objects: the network's lock, if not held yet.

        Links looked up before it was taken are looked up again: the call
        that held it may have made the bridge meanwhile.
        """
        if self.shared_lock is None:
            yield
            return
        with self.shared_lock():
            self.host.forget_links()
            yield

    @property
    def quick(self) -> bool:
        """Whether `Settles` kinds are trusted on their quick test (a pod's call, a quick apply)."""
        return self.pod is not None or not self.thorough

    @property
    def bindings(self) -> dict[str, str]:
        """Values bound so far (`{ipv4.ip}` ...): the record's, which keeps them for DEL."""
        return self.record.bindings if self.record is not None else {}

    @property
    def attachment(self) -> tuple[PodContext, Record]:
        """The pod and its record, for operations that only a pod's call has."""
        assert self.pod is not None and self.record is not None, "a pod's operation"
        return self.pod, self.record

    def note(self, op: Operation[Params], *lines: str) -> None:
        """Say what an operation did beyond its summary: `netc apply` prints it."""
        self.notes.setdefault((op.kind, op.target), []).extend(lines)

    def notes_of(self, op: Operation[Params]) -> list[str]:
        """What `note` recorded for an operation."""
        return self.notes.get((op.kind, op.target), [])

    def later(self, op: Operation[Params], finish: Callable[[], None]) -> None:
        """Have the executor call `finish` before the call ends; `op`'s work runs meanwhile.

        For work done by a program (an iptables-restore is mostly waiting):
        the operations after it go on while it runs.  `finish` waits for it
        and raises if it failed, as `ensure` or `remove` would.
        """
        self.completions.append((op, finish))

    def bind(self, prefix: str, **values: str) -> None:
        """Make `{prefix.name}` placeholders resolvable, and remember them in the record."""
        _, record = self.attachment
        for name, value in values.items():
            record.bindings[f"{prefix}.{name}"] = value


P = TypeVar("P", bound=Params)


class Handler(Protocol[P]):
    """How one kind of operation is carried out; every method is idempotent.

    A handler names the parameters' type of its kind (`params`), which says
    which kind it carries out (the registry's key) and what its methods are
    given: `Operation[LinkVethParams]` for `Kind.LINK_VETH`.  `ensure` repairs
    what differs and leaves what is right alone; `remove` tolerates absence
    (node-scoped kinds, and kinds whose object goes with another one, remove
    nothing); `observe` compares without changing.
    """

    params: type[P]

    def ensure(self, op: Operation[P], run: Run) -> bool:
        """Bring the object to the planned state; True when something had to change."""
        ...

    def remove(self, op: Operation[P], run: Run) -> None:
        """Remove the object, tolerating its absence."""
        ...

    def observe(self, op: Operation[P], run: Run) -> Observation:
        """Compare the object with the plan."""
        ...


class Settles(Handler[P]):
    """A node-scoped kind with a quicker test than `observe` that a pod's ADD trusts."""

    def settled(self, op: Operation[P], run: Run) -> bool:
        """Whether the object needs no change, as far as a pod's ADD asks."""
        raise NotImplementedError


class CutsOff(Handler[P]):
    """A kind whose removal waits for the kernel, and whose object can be cut off at once.

    Unregistering a link waits for an RCU grace period, most of a DEL.  A
    DEL that may answer first (`Run.answer_first`: a warm server's, whose
    process outlives its answer) cuts the pod off instead -- its host veth
    down, so no frame crosses it -- and leaves this removal and the ones
    after it (the address, the record) for after the answer, under the
    attachment's lock all the while.
    """

    def cut_off(self, op: Operation[P], run: Run) -> bool:
        """Make the object carry no traffic; False when there is none to remove."""
        raise NotImplementedError


class KeptByDel:
    """Mixin of handlers whose object a DEL never removes itself."""

    def remove(self, op: Operation[Params], run: Run) -> None:
        """Nothing to do: the object is node-scoped or goes with its parent."""


class Blockable(Handler[P]):
    """A handler whose object something netc does not own can stand in the way of.

    `obstacle` says what that is -- a device of the planned name that is not
    netc's, a VXLAN device holding the planned VNI and port, a route netc did
    not add -- and the fix, in the words `ensure` refuses with and `observe`
    reports (`blocked`).  `netc apply` and the agent ask it of every
    operation before the first change (`executor.refuse_blocked`), so a plan
    that could not be carried out to its end is not started.  Only what no
    earlier operation of a plan can change belongs here: a sysctl that the
    module operation before it creates does not.
    """

    def obstacle(self, op: Operation[P], run: Run) -> str | None:
        """What stands in the way of the planned object, and the fix; None when nothing does."""
        raise NotImplementedError


IN_PLACE_NOW = Observation(State.IN_PLACE)
NOTHING_TO_KEEP = Observation(State.ABSENT, "a one-shot flush leaves nothing to observe")


def missing(detail: str | None = None) -> Observation:
    """The object does not exist yet."""
    return Observation(State.CREATE, detail)


def differs(detail: str) -> Observation:
    """The object exists but not as planned; `detail` says how."""
    return Observation(State.DIFFERENT, detail)


def blocked(obstacle: str) -> Observation:
    """Something netc does not own stands in the object's way: apply refuses, saying `obstacle`."""
    return Observation(State.BLOCKED, obstacle)


def existing_link(run: Run, where: Where, name: str) -> Link:
    """The link `name` in the node or the pod; a missing one is a refusal naming it."""
    return _existing(name, run.host.link(where, name))


def identified_link(run: Run, where: Where, name: str) -> Link:
    """As `existing_link`, for what needs the link's identity alone (`Rtnl.identified`)."""
    return _existing(name, run.host.identified(where, name))


def _existing(name: str, link: Link | None) -> Link:
    if link is None:
        raise OperationRefused(f"link {name} does not exist")
    return link
