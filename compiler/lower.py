"""Lowering one network: its merged statements to a `compiler.ir.Network`.

The structure check (`compiler.schema`) has already refused unknown and
repeated keywords, so this module reads values and the rules between them: a
network has exactly one main plugin, a bridge needs IPAM, hairpin and
promiscuous mode exclude each other (the reference bridge plugin refuses
both), and every path the runtime uses is absolute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from compiler.ast import Statement, Word
from compiler.collect import Collector, body, every, first
from compiler.diagnostics import Diagnostic, Note
from compiler.emit import NETC_PLUGIN_TYPE
from compiler.ir import DEFAULT_BRIDGE, DEFAULT_STATE_DIR, Bridge, Cluster, Ipam, Network, Plugin
from compiler.lower_ipam import absolute_path, lower_ipam
from compiler.lower_policy import lower_bandwidth, lower_hostport
from compiler.plugin_options import conflist_options, options
from compiler.values import block_name, fail, integer, interface_name, one_word, switch, words
from compiler.versions import CNI_VERSIONS, DEFAULT_CNI_VERSION


def lower_network(
    statement: Statement,
    statements: tuple[Statement, ...],
    default_priority: int,
    collector: Collector,
    clusters: Mapping[str, Cluster | None],
) -> Network | None:
    """The IR of one network (after templates); None only when it has no usable name.

    A network with errors (recorded in `collector`) is still returned with
    the parts that could be read, for the checks across networks: the caller
    tells a sound network by the collector's count.
    """
    name = collector.attempt(block_name, statement)
    version = _version(first(statements, "cni"), collector)
    priority_statement = first(statements, "priority")
    priority = collector.attempt(_priority, priority_statement) if priority_statement else None
    state_statement = first(statements, "state-dir")
    state_dir = collector.attempt(absolute_path, state_statement) if state_statement else None
    bridge, plugin, ipam = _lower_main(statement, statements, collector, clusters)
    if ipam and state_statement and state_dir == ipam.data_dir:
        collector.report(
            Diagnostic(
                "E108",
                "`state-dir` is the IPAM `data-dir`",
                state_statement.span,
                expected="a state directory of its own (default /run/netc)",
                hint="records and locks must not live among the address reservations: "
                "drop `state-dir` or give another directory",
            )
        )
    hostport_statement = first(statements, "hostport")
    bandwidth_statement = first(statements, "bandwidth")
    hostport = lower_hostport(hostport_statement, collector) if hostport_statement else None
    bandwidth = lower_bandwidth(bandwidth_statement, collector) if bandwidth_statement else None
    chain = collector.each(lower_chained, every(statements, "chain"))
    _check_chain(every(statements, "chain"), statements, collector)
    top_statement = first(statements, "conflist")
    top = collector.attempt(_conflist, top_statement) if top_statement else None
    if name is None:
        return None
    sources = tuple(dict.fromkeys(s.span.file for s in (statement, *statements)))
    return Network(
        name,
        version,
        default_priority if priority is None else priority,
        bridge,
        plugin,
        ipam,
        hostport,
        bandwidth,
        state_dir or DEFAULT_STATE_DIR,
        statement.span,
        sources,
        tuple(chain),
        top or {},
    )


def _conflist(statement: Statement) -> dict[str, Any]:
    """`conflist { key value }`: keys of the conflist's top level, written as they are."""
    return conflist_options(statement.block) if statement.block else {}


def _lower_main(
    network: Statement,
    statements: tuple[Statement, ...],
    collector: Collector,
    clusters: Mapping[str, Cluster | None],
) -> tuple[Bridge | None, Plugin | None, Ipam | None]:
    """The main plugin and its IPAM, with the rules between them."""
    bridge_statement = first(statements, "bridge")
    plugin_statement = first(statements, "plugin")
    ipam_statement = first(statements, "ipam")
    _check_main(network, bridge_statement, plugin_statement, ipam_statement, collector)
    bridge = lower_bridge(bridge_statement, collector) if bridge_statement else None
    plugin = collector.attempt(lower_plugin, plugin_statement) if plugin_statement else None
    ipam = lower_ipam(ipam_statement, collector, clusters) if ipam_statement else None
    if ipam_statement and plugin and ipam and "ipam" in plugin.options:
        option = first(body(plugin_statement), "ipam")
        collector.report(
            Diagnostic(
                "E501",
                "the plugin has an `ipam` option and the network an `ipam` block",
                ipam_statement.key.span,
                expected="one of the two",
                hint="keep the plugin's own ipam option or the netdsl ipam block",
                notes=(Note("the plugin's `ipam` option is here", option.span),) if option else (),
            )
        )
    static = first(body(ipam_statement), "static-ips")
    if plugin and ipam and ipam.static_ips and static:
        collector.report(
            Diagnostic(
                "E106",
                "`static-ips` declares the `ips` capability of the bridge plugin",
                static.span,
                expected="a `bridge` network",
                hint="a third-party plugin declares its capabilities in its own options: "
                "`capabilities { ips true }`",
            )
        )
    return bridge, plugin, ipam


def _priority(statement: Statement) -> int:
    """`priority NN`: 0 is a priority like any other (`00-multus.conf` sorts first)."""
    return integer(one_word(statement, "a number 0..99"), 0, 99, "a number from 0 to 99")


def _version(statement: Statement | None, collector: Collector) -> str:
    if statement is None:
        return DEFAULT_CNI_VERSION
    word = collector.attempt(one_word, statement, "a CNI version")
    if word is None:
        return DEFAULT_CNI_VERSION
    if word.text not in CNI_VERSIONS:
        collector.report(
            Diagnostic(
                "E104",
                f"CNI version `{word.text}` is not supported",
                word.span,
                expected="one of " + ", ".join(CNI_VERSIONS),
                hint="Kubernetes 1.28 needs 0.4.0 or later; 1.0.0 is recommended",
            )
        )
    return word.text


def _check_main(
    network: Statement,
    bridge: Statement | None,
    plugin: Statement | None,
    ipam: Statement | None,
    collector: Collector,
) -> None:
    if bridge and plugin:
        collector.report(
            Diagnostic(
                "E106",
                "a network has one main plugin: `bridge` or `plugin`, not both",
                plugin.key.span,
                expected="either `bridge` or `plugin`",
                notes=(Note("the bridge is here", bridge.span),),
            )
        )
    elif not bridge and not plugin and network.block is not None:
        collector.report(
            Diagnostic(
                "E012",
                "this network has no main plugin",
                network.key.span,
                expected="a `bridge { ... }` or `plugin TYPE { ... }` block",
                hint="most networks start with `bridge cni0 { gateway; masquerade }`",
            )
        )
    if bridge and not ipam:
        collector.report(
            Diagnostic(
                "E012",
                "a bridge network needs an `ipam` block",
                bridge.key.span,
                expected="`ipam { subnet CIDR }` in the network",
                hint="add `ipam { subnet 10.244.1.0/24 }` with your pod subnet",
            )
        )


BRIDGE_FLAGS = ("gateway", "masquerade", "hairpin", "promiscuous")


def lower_bridge(statement: Statement, collector: Collector) -> Bridge | None:
    """`bridge [NAME] { mtu; gateway; masquerade; hairpin; promiscuous }`; reports every problem.

    With errors inside the block the bridge is still returned when its name
    is readable, so a bridge shared with another network is reported too.
    """
    values = collector.attempt(words, statement, 0, 1, "an optional bridge name") or []
    name = collector.attempt(interface_name, values[0], "bridge") if values else DEFAULT_BRIDGE
    statements = body(statement)
    mtu_statement = first(statements, "mtu")
    mtu = collector.attempt(_mtu, mtu_statement) if mtu_statement else None
    given = {k: s for k in BRIDGE_FLAGS if (s := first(statements, k))}
    flags = {k: collector.attempt(switch, s) for k, s in given.items()}
    if flags.get("hairpin") and flags.get("promiscuous"):
        collector.report(
            Diagnostic(
                "E106",
                "hairpin and promiscuous mode cannot both be on",
                given["promiscuous"].span,
                expected="at most one of `hairpin` and `promiscuous`",
                hint="the bridge plugin refuses this combination as well",
                notes=(Note("hairpin is turned on here", given["hairpin"].span),),
            )
        )
    if name is None:
        return None
    return Bridge(name=name, mtu=mtu, span=statement.span, **{k: bool(v) for k, v in flags.items()})


def _mtu(statement: Statement) -> int:
    return integer(one_word(statement, "an MTU"), 576, 65535, "an MTU from 576 to 65535")


def lower_plugin(statement: Statement) -> Plugin:
    """`plugin TYPE { options }`: a passthrough main plugin."""
    kind = _plugin_type(statement, "calico or flannel")
    return Plugin(kind, _options(statement), statement.span)


WRITTEN_BY_NETC = {"portmap": "hostport", "bandwidth": "bandwidth"}
"""Chained plugins netc emits itself, and the netdsl statement that asks for each."""


def lower_chained(statement: Statement) -> Plugin:
    """`chain TYPE [{ options }]`: a plugin run after netc's own, options passed through."""
    kind = _plugin_type(statement, "firewall or tuning")
    return Plugin(kind, _options(statement), statement.span)


def _check_chain(
    chained: Sequence[Statement], statements: tuple[Statement, ...], collector: Collector
) -> None:
    """Chained plugins netc writes itself, refused (E502): see `_written_by_netc`."""
    for statement in chained:
        word = statement.values[0] if statement.values else None
        refusal = _written_by_netc(word, statements) if isinstance(word, Word) else None
        if refusal is not None:
            collector.report(refusal)


def _written_by_netc(word: Word, statements: tuple[Statement, ...]) -> Diagnostic | None:
    """The refusal of a chained plugin netc writes itself, if this one is such a plugin.

    `chain portmap` beside `hostport` (or `chain bandwidth` beside `bandwidth`):
    netc writes that plugin itself for the statement, whose policies it checks
    and plans; a second one would run twice.  Alone, `chain portmap { ... }` is
    the plugin as written, options netdsl does not model included (what `netc
    import` keeps that way), like `plugin bridge { ... }` for the main plugin.
    `chain netc-cni`, always: netc writes it first, with the compiled network a
    chained one would lack.
    """
    kind = word.text
    if kind == NETC_PLUGIN_TYPE:
        return Diagnostic(
            "E502",
            f"netc writes the {kind} plugin itself, first",
            word.span,
            expected=f"a plugin that runs after {kind}, such as firewall or tuning",
            hint=f"remove the `chain` line: `netc build --target netc` writes {kind} with the "
            "compiled network, which a chained one would lack",
        )
    instead = WRITTEN_BY_NETC.get(kind)
    if instead is None or not first(statements, instead):
        return None
    return Diagnostic(
        "E502",
        f"netc writes the {kind} plugin itself for `{instead}`",
        word.span,
        expected=f"`{instead}` or `chain {kind} {{ ... }}`, not both",
        hint=f"keep `{instead}` (netc checks its policy) and remove the `chain` line",
    )


def _options(statement: Statement) -> dict[str, Any]:
    """The options of a `plugin` or `chain` block (none without a block)."""
    return options(statement.block) if statement.block else {}


def _plugin_type(statement: Statement, examples: str) -> str:
    word = one_word(statement, f"the plugin type, such as {examples}")
    if not word.text or "/" in word.text or "\\" in word.text:
        raise fail(
            "E013",
            f"`{word.text}` is not a plugin type",
            word.span,
            expected=f"the name of a plugin binary, such as {examples}",
        )
    return word.text
