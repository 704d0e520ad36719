"""Printing plans: numbered operations grouped by phase for people, JSON/YAML for tools.

Text layout (one operation):

       12  + NAT chain nat/NETC-PO-049c... (IPv4), 5 rules
             pods.netdsl:4 | bridge cni0 {

With `--live` each operation also carries what the kernel has now, shown
with terraform's symbols: `+` to create, `=` already in place, `~` different
(the difference on the next line) -- and `!` blocked: something netc does not
own stands in the way, and apply refuses (what, and the fix, on the next line).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from compiler.planner import iptables
from compiler.planner.ops import (
    PHASE_TITLES,
    Action,
    Observation,
    Operation,
    Params,
    Plan,
    State,
    has_params,
    placeholders,
)
from compiler.planner.params import IptablesAttachmentParams, IptablesNodeParams
from compiler.source import SourceFile, Span

ACTION_SYMBOLS = {Action.ENSURE: "+", Action.REMOVE: "-", Action.CHECK: "?"}
LIVE_SYMBOLS = {
    State.CREATE: "+",
    State.IN_PLACE: "=",
    State.DIFFERENT: "~",
    State.ABSENT: "=",
    State.BLOCKED: "!",
}


def render_text(
    plan: Plan, sources: Mapping[str, SourceFile], live: Sequence[Observation] | None = None
) -> str:
    """The plan for people; `live` holds one observation per operation when given."""
    lines = _header(plan)
    phase = None
    for index, op in enumerate(plan.operations):
        if op.phase != phase:
            phase = op.phase
            lines += ["", PHASE_TITLES[phase]]
        seen = live[index] if live is not None else None
        lines += _operation(index + 1, op, sources, seen)
    lines += ["", _summary(plan, live), *_legend(plan, live)]
    return "\n".join(lines) + "\n"


def _header(plan: Plan) -> list[str]:
    files = f" ({', '.join(plan.sources)})" if plan.sources else ""
    who = plan.attachment
    if who is None:
        assert plan.node is not None
        cluster = f" of cluster {plan.node.cluster}" if plan.node.cluster else ""
        return [f"netc plan: node-scoped operations of node {plan.node.node}{cluster}{files}"]
    pod = f"{who.namespace or '-'}/{who.pod_name}" if who.pod_name else who.container_id
    return [
        f"netc plan: {plan.command} of pod {pod} on network {who.network}{files}",
        f"  container {who.container_id}  ifname {who.ifname}"
        + (f"  netns {who.netns}" if who.netns else ""),
    ]


def _operation(
    number: int, op: Operation[Params], sources: Mapping[str, SourceFile], seen: Observation | None
) -> list[str]:
    symbol = LIVE_SYMBOLS[seen.state] if seen else ACTION_SYMBOLS[op.action]
    lines = [f"  {number:3d} {symbol} {op.summary}"]
    lines += [f"        {rule}" for rule in _rules(op)]
    if seen and seen.detail:
        lines.append(f"        {seen.detail}")
    if op.undone_by and op.action == Action.ENSURE:
        lines.append(f"        (removed with {op.undone_by})")
    if op.span:
        lines.append(f"        {_where(op.span, sources)}")
    return lines


def _where(span: Span, sources: Mapping[str, SourceFile]) -> str:
    """`file:line | path`: the line an operation comes from and the path the runtime names.

    A network decoded from a conflist knows only paths; the line text stands in
    for a path only where there is none.
    """
    if not span.line:
        return span.path
    shown = span.path or (
        sources[span.file].line(span.line).strip() if span.file in sources else ""
    )
    return f"{span.file}:{span.line}" + (f" | {shown}" if shown else "")


def _rules(op: Operation[Params]) -> list[str]:
    """The iptables-restore lines an operation writes on a node that has none of them yet.

    They come from the function the runtime writes them with: a reviewer
    sees exactly the NAT a pod gets.
    """
    if has_params(op, IptablesNodeParams) and op.action == Action.ENSURE:
        return iptables.node_setup(op.params, iptables.FRESH)
    if not has_params(op, IptablesAttachmentParams):
        return []
    if op.action == Action.REMOVE:
        return iptables.attachment_teardown(op.params)
    if op.action == Action.ENSURE and op.params.rules is not None:
        return iptables.attachment_setup(op.params, iptables.FRESH, repeated=False)
    return []


def _summary(plan: Plan, live: Sequence[Observation] | None) -> str:
    ops = plan.operations
    if live is not None:
        counts = {state: sum(o.state == state for o in live) for state in LIVE_SYMBOLS}
        pending = counts[State.CREATE] + counts[State.DIFFERENT]
        blocked = (
            f", {counts[State.BLOCKED]} blocked -- apply refuses until what is in their way is gone"
            if counts[State.BLOCKED]
            else ""
        )
        return (
            f"Plan: {counts[State.CREATE]} to create, {counts[State.DIFFERENT]} different, "
            f"{counts[State.IN_PLACE] + counts[State.ABSENT]} in place"
            + blocked
            + ("." if pending or blocked else " -- nothing to do.")
        )
    node = sum(not op.owned for op in ops)
    owned = len(ops) - node
    if plan.attachment is None:
        return f"Plan: {len(ops)} node-scoped operations; `netc apply` makes them true."
    if plan.command == "DEL":
        return f"Plan: {len(ops)} removals for DEL; node-scoped objects are kept."
    removed = sum(op.removed_by_del for op in ops)
    return (
        f"Plan: {len(ops)} operations for {plan.command}: {node} node-scoped (kept by "
        f"DEL), {owned} owned by the attachment ({removed} removed by DEL, "
        f"{owned - removed} go with them)."
    )


def _legend(plan: Plan, live: Sequence[Observation] | None) -> list[str]:
    lines = []
    if any(placeholders(op.params) for op in plan.operations):
        lines.append("Values in {braces} are known once the address reservation has run.")
    if live is not None:
        lines.append(
            "Legend: + to create   = in place   ~ different"
            + ("   ! blocked" if any(o.state == State.BLOCKED for o in live) else "")
        )
    else:
        lines.append("Legend: + ensure (create or repair)   - remove   ? check")
    return lines


def plan_document(plan: Plan, live: Sequence[Observation] | None = None) -> dict[str, Any]:
    """The versioned document behind `--format json` and `--format yaml`."""
    document = plan.to_json()
    if live is not None:
        for entry, seen in zip(document["operations"], live, strict=True):
            entry["live"] = seen.to_json()
    return document


def render_json(plan: Plan, live: Sequence[Observation] | None = None) -> str:
    """The plan as JSON, versioned by `format_version`."""
    return json.dumps(plan_document(plan, live), indent=2) + "\n"


def render_yaml(plan: Plan, live: Sequence[Observation] | None = None) -> str:
    """The plan as YAML, the same document as the JSON form."""
    import yaml

    return yaml.safe_dump(plan_document(plan, live), sort_keys=False)
