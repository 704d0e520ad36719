"""Operations and plans: the data `netc plan` prints and the runtime executes.

An `Operation` names one kernel (or state-file) object and the state it must
be in.  Its `action` says what to do: `ensure` it (create or repair,
idempotently), `remove` it (tolerating absence) or `check` it.  Node-scoped
operations (the bridge, ip_forward, a network's NAT chains) are shared by all
pods and never removed by a DEL; attachment-owned ones are, unless their
object disappears with another one (`undone_by`, e.g. an address with its
veth).

Its parameters are the contract between the planner and the runtime: one
frozen type per kind (`compiler.planner.params`), so the handler of a kind
gets that kind's type (`Operation[LinkVethParams]`) and a misspelt field is
a type error, not a KeyError in a root test.  Their JSON form is their
fields by name, in order.

Parameters may hold placeholders such as `{ipv4.cidr}`: values known only
once the IPAM reservation has run ("known after apply").  The runtime fills
them from the reservation; `netc plan` shows them as they are.

The JSON form carries `PLAN_FORMAT`: a minor bump adds fields, a major bump
breaks readers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar

from compiler.datatypes import Field, dataclass_transform, field, fields, frozen, replace
from compiler.source import Span

PLAN_FORMAT = "2.1"
"""2.0: iptables rules are argument lists; a network's NAT is one operation per family.
2.1: the live state `blocked`."""


class Vocabulary(str, Enum):  # noqa: UP042 - StrEnum is 3.11, the plugin runs on 3.10 hosts
    """A word of the plan's vocabulary: equal to, hashed and printed as its text.

    (enum.StrEnum does this from Python 3.11; the plugin runs on 3.10 hosts too.)
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Kind(Vocabulary):
    """What an operation acts on; the runtime has one handler per kind.

    A kind's name is its wire value, spelt as a Python name.
    """

    STATE_RECORD = "state.record"
    KERNEL_MODULE = "kernel.module"
    SYSCTL = "sysctl"
    LINK_BRIDGE = "link.bridge"
    LINK_VETH = "link.veth"
    LINK_MASTER = "link.master"
    LINK_HAIRPIN = "link.hairpin"
    LINK_UP = "link.up"
    LINK_IFB = "link.ifb"
    ADDRESS = "address"
    ROUTE = "route"
    NEIGHBOUR_FORGET = "neighbour.forget"
    IPAM_ADDRESS = "ipam.address"
    IPTABLES_NODE = "iptables.node"
    LINK_VXLAN = "link.vxlan"
    ROUTE_NODE = "route.node"
    NEIGHBOUR = "neighbour"
    FDB = "fdb"
    NODE_PRUNE = "node.prune"
    IPTABLES_ATTACHMENT = "iptables.attachment"
    HOSTPORT_CLAIM = "hostport.claim"
    CONNTRACK_FLUSH = "conntrack.flush"
    TC_TBF = "tc.tbf"
    TC_INGRESS = "tc.ingress"
    TC_REDIRECT = "tc.redirect"


class Phase(Vocabulary):
    """The groups a plan is printed in, in execution order."""

    RECORD = "record"
    NODE = "node"
    PEERS = "peers"
    IPAM = "ipam"
    SANDBOX = "sandbox"
    HOSTPORT = "hostport"
    SHAPING = "shaping"


PHASE_TITLES = {
    Phase.RECORD: "Attachment record",
    Phase.NODE: "Node (shared by every pod of the network)",
    Phase.PEERS: "Routes to the other nodes of the cluster",
    Phase.IPAM: "Addresses",
    Phase.SANDBOX: "Pod interface and sandbox",
    Phase.HOSTPORT: "Host ports",
    Phase.SHAPING: "Traffic shaping",
}


class Scope(Vocabulary):
    """Who owns an operation's object: the node (kept by DEL) or the attachment."""

    NODE = "node"
    ATTACHMENT = "attachment"


class Where(Vocabulary):
    """The network namespace an operation acts in."""

    NODE = "node"
    SANDBOX = "sandbox"


class Action(Vocabulary):
    """What to do with the object."""

    ENSURE = "ensure"
    REMOVE = "remove"
    CHECK = "check"


class State(Vocabulary):
    """Live states of an operation's object.

    To create, as planned, not as planned, gone -- or blocked: something netc
    does not own stands in its way, and apply refuses.
    """

    CREATE = "create"
    IN_PLACE = "in-place"
    DIFFERENT = "different"
    ABSENT = "absent"
    BLOCKED = "blocked"


_PLACEHOLDER = re.compile(r"\{([a-z0-9]+\.[a-z]+)\}")

T = TypeVar("T")


class JsonData:
    """Data of the plan whose machine form is its fields, by name and in order.

    A field made with `omitted_at_default` is left out while it has its
    default (a sysctl's `optional`, a jump's `first`).
    """

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The machine form: every field's value, tuples as lists."""
        return {
            f.name: machine_form(value)
            for f in fields(self)
            if not _omitted(f, value := getattr(self, f.name))
        }


def _omitted(f: Field, value: object) -> bool:
    return bool(f.metadata.get("omitted_at_default")) and value == f.default


def omitted_at_default(default: T) -> T:
    """A field left out of the machine form while it holds `default`."""
    given: T = field(default=default, metadata={"omitted_at_default": True})
    return given


def machine_form(value: Any) -> Any:
    """A parameter's JSON value: data as its `to_json()`, tuples as lists."""
    if isinstance(value, tuple | list):
        return [machine_form(v) for v in value]
    to_json = getattr(value, "to_json", None)
    return value if to_json is None else to_json()


class Params(JsonData):
    """The parameters of one kind of operation; each kind has its own type (`params_of`)."""

    __slots__ = ()
    KIND: ClassVar[Kind]


P_co = TypeVar("P_co", bound=Params, covariant=True)
P = TypeVar("P", bound=Params)


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def params_of(kind: Kind) -> Callable[[type[P]], type[P]]:
    """Make a class the parameters of `kind`: a frozen data type whose `KIND` is `kind`."""

    def define(cls: type[P]) -> type[P]:
        defined = frozen(cls)
        defined.KIND = kind
        return defined

    return define


@frozen
class Operation(Generic[P_co]):
    """One step of a plan; see the module docstring.  Its kind is its parameters' type's."""

    target: str
    summary: str
    params: P_co
    phase: Phase
    scope: Scope = Scope.ATTACHMENT
    where: Where = Where.NODE
    action: Action = Action.ENSURE
    undone_by: str | None = None
    span: Span | None = None

    @property
    def kind(self) -> Kind:
        """What the operation acts on: the kind its parameters are for."""
        return self.params.KIND

    @property
    def owned(self) -> bool:
        """True when the attachment owns the object (a DEL must account for it)."""
        return self.scope == Scope.ATTACHMENT

    @property
    def removed_by_del(self) -> bool:
        """True when a DEL removes this object explicitly."""
        return self.owned and self.undone_by is None

    def with_action(self, action: Action) -> Operation[P_co]:
        """The same operation with another action (`remove` for a DEL, `check` for CHECK)."""
        return replace(self, action=action)

    def resolved(self, bindings: Mapping[str, str]) -> Operation[P_co]:
        """The operation with every `{name.field}` placeholder filled in."""
        if not bindings:  # nothing to fill in (a node's plan): the operation as it is
            return self
        params, summary = fill(self.params, bindings), fill(self.summary, bindings)
        if params is self.params and summary == self.summary:
            return self
        return replace(self, params=params, summary=summary)

    def to_json(self) -> dict[str, Any]:
        """The machine form of the operation."""
        return {
            "kind": self.kind.value,
            "action": self.action.value,
            "target": self.target,
            "summary": self.summary,
            "scope": self.scope.value,
            "where": self.where.value,
            "phase": self.phase.value,
            "undone_by": self.undone_by,
            "params": self.params.to_json(),
            "source": self.span.to_json() if self.span else None,
        }


def has_params(op: Operation[Params], kind: type[P]) -> TypeGuard[Operation[P]]:
    """Whether `op` is of the kind whose parameters are `kind` (then typed as such)."""
    return isinstance(op.params, kind)


def fill(value: T, bindings: Mapping[str, str]) -> T:
    """`value` with the placeholders in its strings replaced from `bindings`.

    Tuples, lists and data are rebuilt only where something was filled in:
    what holds no placeholder is returned as it is.
    """
    filled: T = _fill(value, bindings)
    return filled


def _fill(value: Any, bindings: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if "{" not in value:
            return value
        return _PLACEHOLDER.sub(lambda m: bindings.get(m.group(1), m.group(0)), value)
    if isinstance(value, tuple | list):
        items = _filled(value, bindings)
        return value if items is None else type(value)(items)
    if isinstance(value, JsonData):
        items = _filled([getattr(value, f.name) for f in fields(value)], bindings)
        return value if items is None else type(value)(*items)
    return value


def _filled(values: Sequence[Any], bindings: Mapping[str, str]) -> list[Any] | None:
    """The values filled in, or None when none of them held a placeholder."""
    items = [_fill(v, bindings) for v in values]
    return items if any(a is not b for a, b in zip(items, values, strict=True)) else None


def placeholders(value: Any) -> set[str]:
    """The placeholder names a value (a string, a sequence, parameters) still holds."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, JsonData):
        value = [getattr(value, f.name) for f in fields(value)]
    if isinstance(value, list | tuple):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


@frozen
class Attachment:
    """Who the plan is for."""

    network: str
    container_id: str
    ifname: str
    netns: str | None = None
    namespace: str | None = None
    pod_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The machine form of the attachment."""
        return {
            "network": self.network,
            "container_id": self.container_id,
            "ifname": self.ifname,
            "netns": self.netns,
            "namespace": self.namespace,
            "pod_name": self.pod_name,
        }


@frozen
class NodeSubject:
    """Who a node-scoped plan is for: a node (of a cluster, when there is one)."""

    node: str
    cluster: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The machine form of the subject."""
        return {"node": self.node, "cluster": self.cluster}


@frozen
class Plan:
    """An ordered list of operations: one CNI command on one attachment, or a node's `APPLY`."""

    command: str
    attachment: Attachment | None
    operations: tuple[Operation[Params], ...]
    sources: tuple[str, ...] = field(default=())
    node: NodeSubject | None = None

    def to_json(self) -> dict[str, Any]:
        """The versioned machine form printed by `netc plan --format json`."""
        document: dict[str, Any] = {"format_version": PLAN_FORMAT, "command": self.command}
        if self.attachment is not None:
            document["attachment"] = self.attachment.to_json()
        if self.node is not None:
            document["node"] = self.node.to_json()
        document["operations"] = [op.to_json() for op in self.operations]
        return document


@frozen
class Observation:
    """What the kernel shows for one operation: a live state and, if different, how."""

    state: State
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The machine form of the observation."""
        return {"state": self.state.value, "detail": self.detail}
