"""Lowering `hostport { ... }` and `bandwidth { ... }`: capabilities and their policies.

The policy is checked for contradictions here (an `allow` that `deny` takes
away entirely, a default above its maximum); applying it to a pod's request is
the planner's job (`compiler.planner.policy`).
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.ast import Statement, Word
from compiler.collect import Collector, body, every, first
from compiler.diagnostics import Diagnostic, Note
from compiler.ir import (
    DIRECTIONS,
    PROTOCOLS,
    Bandwidth,
    HostPort,
    Limits,
    NamespacePolicy,
    PortRule,
    Rate,
)
from compiler.shaping import describe_rate
from compiler.values import address, burst, network_name, port_rule, rate, switch, words


def lower_hostport(statement: Statement, collector: Collector) -> HostPort:
    """The hostPort capability with its allow/deny/host-ip policy."""
    statements = body(statement)
    allow = [
        r
        for s in every(statements, "allow")
        for r in collector.each(lambda w: port_rule(w, "allow"), _port_words(s, collector))
    ]
    deny = [
        r
        for s in every(statements, "deny")
        for r in collector.each(lambda w: port_rule(w, "deny"), _port_words(s, collector))
    ]
    host_ips = [
        ip
        for s in every(statements, "host-ip")
        for ip in collector.each(address, _word_list(s, collector, "node addresses"))
    ]
    snat_statement = first(statements, "snat")
    snat = collector.attempt(switch, snat_statement) if snat_statement else True
    for rule in allow:
        problem = _denied_entirely(rule, deny)
        if problem:
            collector.report(problem)
    return HostPort(
        tuple(allow), tuple(deny), tuple(host_ips), True if snat is None else snat, statement.span
    )


def _port_words(statement: Statement, collector: Collector) -> list[Word]:
    return _word_list(statement, collector, "ports or ranges such as 8080, 30000..32767")


def _word_list(statement: Statement, collector: Collector, what: str) -> list[Word]:
    return collector.attempt(words, statement, 1, None, what) or []


def _denied_entirely(rule: PortRule, deny: Sequence[PortRule]) -> Diagnostic | None:
    """A diagnostic when every port and protocol an allow rule opens is denied again."""
    protocols = (rule.protocol,) if rule.protocol else PROTOCOLS
    culprits: list[PortRule] = []
    for protocol in protocols:
        relevant = sorted(
            (d for d in deny if d.protocol in (None, protocol)), key=lambda d: d.first
        )
        covered = _covering(rule.first, rule.last, relevant)
        if covered is None:
            return None
        culprits += covered
    notes = tuple(Note(f"`{d}` is here", d.span) for d in dict.fromkeys(culprits) if d.span)
    return Diagnostic(
        "E302",
        f"`{rule}` allows nothing: every port in it is denied",
        rule.span,
        expected="an allow rule with at least one port that no deny rule takes back",
        hint="remove the allow rule or narrow the deny rules",
        notes=notes,
    )


def _covering(low: int, high: int, denies: Sequence[PortRule]) -> list[PortRule] | None:
    """The deny rules that together cover low..high, or None if some port stays open."""
    used = []
    next_open = low
    for deny in denies:
        if deny.first <= next_open <= deny.last:
            used.append(deny)
            next_open = deny.last + 1
            if next_open > high:
                return used
    return None


def lower_bandwidth(statement: Statement, collector: Collector) -> Bandwidth:
    """The bandwidth capability with static limits or a default/max policy."""
    statements = body(statement)
    limit = _limits(first(statements, "limit"), collector)
    default = _limits(first(statements, "default"), collector)
    maximum = _limits(first(statements, "max"), collector)
    namespaces = tuple(_namespace(s, maximum, collector) for s in every(statements, "namespace"))
    policy = (
        first(statements, "default") or first(statements, "max") or first(statements, "namespace")
    )
    limit_statement = first(statements, "limit")
    if limit_statement and policy:
        collector.report(
            Diagnostic(
                "E404",
                "a static `limit` applies to every pod, so this policy would never be used",
                policy.span,
                expected="either `limit` or `default`/`max`/`namespace`",
                hint="remove `limit` to let pods ask for bandwidth within the policy",
                notes=(Note("the static limit is here", limit_statement.span),),
            )
        )
    _check_default(default, maximum, collector)
    return Bandwidth(limit, default, maximum, namespaces, statement.span)


def _namespace(
    statement: Statement, network_max: Limits | None, collector: Collector
) -> NamespacePolicy:
    names = collector.each(
        lambda w: network_name(w, "namespace"),
        collector.attempt(words, statement, 1, None, "Kubernetes namespace names") or [],
    )
    statements = body(statement)
    default = _limits(first(statements, "default"), collector)
    maximum = _limits(first(statements, "max"), collector)
    _check_default(default, maximum or network_max, collector)
    return NamespacePolicy(tuple(names), default, maximum, statement.span)


def _check_default(default: Limits | None, maximum: Limits | None, collector: Collector) -> None:
    if default is None or maximum is None:
        return
    for direction in DIRECTIONS:
        low, high = default.direction(direction), maximum.direction(direction)
        if low and high and low.rate > high.rate:
            collector.report(
                Diagnostic(
                    "E403",
                    f"default {direction} {describe_rate(low.rate)} is above the maximum "
                    f"{describe_rate(high.rate)}",
                    low.span,
                    expected=f"a default {direction} rate at most the maximum",
                    hint="lower the default or raise the maximum",
                    notes=(Note("the maximum is here", high.span),) if high.span else (),
                )
            )


def _limits(statement: Statement | None, collector: Collector) -> Limits | None:
    if statement is None:
        return None
    return lower_limits(statement, collector)


def lower_limits(statement: Statement, collector: Collector) -> Limits | None:
    """`ingress RATE [burst SIZE] egress RATE [burst SIZE]`, each direction optional.

    Every bad direction, rate and burst of the statement is reported, so
    `default ingress 10MB egress 10mbit` names both quantities.
    """
    return collector.attempt(_read_limits, statement)


def _read_limits(statement: Statement) -> Limits:
    values = words(statement, 2, 8, "ingress RATE and/or egress RATE, each optionally with burst")
    parts = Collector()
    found: dict[str, Rate] = {}
    index = 0
    while index < len(values):
        direction = values[index]
        limit, index = _direction_at(values, index, parts)
        if limit is not None and direction.text in found:
            parts.report(
                Diagnostic(
                    "E011",
                    f"{direction.text} is given twice",
                    direction.span,
                    expected="each direction once",
                )
            )
        elif limit is not None:
            found[direction.text] = limit
    parts.raise_recorded()
    return Limits(found.get("ingress"), found.get("egress"), statement.span)


def _direction_at(
    values: Sequence[Word], index: int, collector: Collector
) -> tuple[Rate | None, int]:
    """The `DIRECTION RATE [burst SIZE]` starting at `index`, and the index after it.

    A misspelt direction is reported and its rate still read, so the rest of
    the statement stays in step.
    """
    direction = values[index]
    known = direction.text in DIRECTIONS
    if not known:
        collector.report(
            Diagnostic(
                "E013",
                f"expected ingress or egress, found `{direction.text}`",
                direction.span,
                expected="`ingress RATE` or `egress RATE`",
                hint="ingress is traffic to the pod, egress traffic from it",
            )
        )
    if index + 1 >= len(values):
        if known:
            collector.report(
                Diagnostic(
                    "E013",
                    f"{direction.text} needs a rate",
                    direction.span,
                    expected="a rate such as 10M after the direction",
                )
            )
        return None, index + 1
    bits = collector.attempt(rate, values[index + 1])
    end, size, index = values[index + 1], None, index + 2
    if index < len(values) and values[index].text == "burst":
        if index + 1 >= len(values):
            collector.report(
                Diagnostic(
                    "E013",
                    "burst needs a size",
                    values[index].span,
                    expected="a size in bits such as 1M after `burst`",
                )
            )
            return None, index + 1
        end, size = values[index + 1], collector.attempt(burst, values[index + 1])
        index += 2
    if not known or bits is None:
        return None, index
    return Rate(bits, size, direction.span.cover(end.span)), index
