"""The stock plugins netdsl models, read from their JSON: bridge, host-local, portmap, bandwidth.

Each reader takes one plugin object and returns netdsl statements that
`netc build --target reference` turns back into that object.  Where that is
impossible the reader says so in the report, naming the JSON path; the
rules follow what `compiler.emit` writes and what the plugins read
(research notes: reference-plugins.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from compiler.conflist_import.report import Keys, Path, Report, format_path, show
from compiler.conflist_import.writer import Node, is_word, quoted
from compiler.identifiers import interface_name_problem
from compiler.ir import (
    DEFAULT_BRIDGE,
    DEFAULT_DATA_DIR,
    DIRECTIONS,
    MAX_RATE,
    MIN_RATE,
    IPAddress,
    IPNetwork,
)
from compiler.quantities import format_quantity
from compiler.shaping import bucket

BRIDGE_FLAGS = (
    ("isGateway", "gateway"),
    ("ipMasq", "masquerade"),
    ("hairpinMode", "hairpin"),
    ("promiscMode", "promiscuous"),
)
"""bridge plugin keys and the netdsl switches that write them."""

DEFAULT_ROUTES = {4: "0.0.0.0/0", 6: "::/0"}


def bridge(plugin: Mapping[str, Any], path: Path, report: Report) -> list[Node]:
    """`bridge NAME { ... }` and the `ipam` block of a bridge with host-local IPAM."""
    keys = Keys(plugin, path, report)
    keys.take("type", str, "a plugin type")
    name = keys.take("bridge", str, "a bridge name")
    if name is None:
        name = DEFAULT_BRIDGE
        report.note(keys.at("bridge"), f"no bridge name: netc writes the default, {name}")
    elif interface_name_problem(name) or not is_word(name):
        problem = interface_name_problem(name) or "holds a character netdsl names cannot"
        report.error(keys.at("bridge"), f"bridge name {show(name)} {problem}")
    body = _bridge_settings(keys)
    default_gateway = keys.take("isDefaultGateway", bool, "true or false")
    if default_gateway and "gateway" not in {n.head for n in body}:
        body.append(Node("gateway"))
    elif default_gateway is False:
        report.note(keys.at("isDefaultGateway"), "false is the default: left out")
    capabilities = (
        [Node("static-ips")] if _capabilities(keys, ("ips",), "the bridge plugin") else []
    )
    dns = keys.take("dns", dict, "a DNS object")
    ipam = keys.take("ipam", dict, "an IPAM object")
    keys.rest("the bridge plugin")
    if default_gateway:
        report.note(
            keys.at("isDefaultGateway"),
            "written as `gateway` and a default route per family: pods get the same routes",
            also=(keys.at("isGateway"), (*keys.at("ipam"), "routes")),
        )
    ipam_node = host_local(
        ipam or {},
        keys.at("ipam"),
        report,
        extra=[*capabilities, *_dns(dns, keys.at("dns"), report)],
        default_routes=bool(default_gateway),
    )
    return [Node(f"bridge {name}", body or None), ipam_node]


def _bridge_settings(keys: Keys) -> list[Node]:
    body = []
    mtu = keys.take("mtu", int, "an MTU")
    if mtu is not None and 576 <= mtu <= 65535:
        body.append(Node(f"mtu {mtu}"))
    elif mtu == 0:
        keys.report.note(keys.at("mtu"), "0 is the kernel's default MTU: left out")
    elif mtu is not None:
        keys.report.warn(keys.at("mtu"), f"MTU {mtu} is outside 576..65535: dropped")
    for key, switch in BRIDGE_FLAGS:
        value = keys.take(key, bool, "true or false")
        if value:
            body.append(Node(switch))
        elif value is False:
            keys.report.note(keys.at(key), "false is the default: left out")
    return body


def _capabilities(keys: Keys, names: tuple[str, ...], owner: str) -> set[str]:
    """Which of `names` a plugin declares as capabilities; any other capability is reported."""
    capabilities = keys.take("capabilities", dict, "an object of capabilities")
    if capabilities is None:
        return set()
    if not capabilities:
        keys.report.note(keys.at("capabilities"), "no capability declared: left out")
    inner = Keys(capabilities, keys.at("capabilities"), keys.report)
    declared = set()
    for name in names:
        value = inner.take(name, bool, "true or false")
        if value:
            declared.add(name)
        elif value is False:
            keys.report.note(inner.at(name), "false is the default: left out")
    inner.rest(f"{owner}'s capabilities")
    return declared


def _dns(dns: Mapping[str, Any] | None, path: Path, report: Report) -> list[Node]:
    if dns is None:
        return []
    keys = Keys(dns, path, report)
    body = []
    for name in ("nameservers", "search", "options"):
        values = keys.take(name, list, "a list of strings") or []
        words = []
        for index, value in enumerate(values):
            usable = (
                isinstance(value, str)
                and is_word(value)
                and (name != "nameservers" or _address(value) is not None)
            )
            if usable:
                words.append(value)
            else:
                report.warn(
                    (*path, name, index),
                    f"{show(value)} is not "
                    f"{'an address' if name == 'nameservers' else 'one word'}: dropped",
                    also=((*path, name),),
                )
        if words:
            body.append(Node(f"{name} {', '.join(words)}"))
        elif name in dns:
            report.note((*path, name), "an empty list: left out")
    domain = keys.take("domain", str, "a domain name")
    if domain and is_word(domain):
        body.append(Node(f"domain {domain}"))
    elif domain is not None:
        report.warn((*path, "domain"), f"{show(domain)} is not one word: dropped")
    keys.rest("the DNS object")
    return [Node("dns", body)]


def host_local(
    ipam: Mapping[str, Any],
    path: Path,
    report: Report,
    extra: Sequence[Node],
    default_routes: bool = False,
) -> Node:
    """The `ipam { ... }` block of a host-local configuration.

    `default_routes` adds a default route for each family that has none, as
    the bridge plugin's isDefaultGateway does.
    """
    keys = Keys(ipam, path, report)
    keys.take("type", str, "an IPAM type")
    subnets = _subnets(keys)
    families = {family for family, _ in subnets}
    entries = keys.take("routes", list, "a list of routes") or []
    if "routes" in ipam and ipam["routes"] == []:
        report.note(keys.at("routes"), "an empty list: left out")
    routes = [
        r
        for r in (
            _route(entry, (*keys.at("routes"), index), families, report)
            for index, entry in enumerate(entries)
        )
        if r is not None
    ]
    if default_routes:
        routes += [
            Node(f"route {DEFAULT_ROUTES[f]}")
            for f in sorted(families)
            if not any(r.head.split()[1] == DEFAULT_ROUTES[f] for r in routes)
        ]
    data_dir = keys.take("dataDir", str, "a directory path")
    settings = []
    if data_dir == DEFAULT_DATA_DIR:
        report.note(keys.at("dataDir"), "the default data directory: left out")
    elif data_dir is not None and data_dir.startswith("/"):
        settings.append(Node(f"data-dir {quoted(data_dir)}"))
    elif data_dir is not None:
        report.warn(keys.at("dataDir"), "not an absolute path: dropped")
    if keys.take("resolvConf", str, "a file path") is not None:
        report.warn(
            keys.at("resolvConf"),
            "host-local reads this file on every ADD; write its "
            "nameservers in `dns { ... }` instead: dropped",
        )
    keys.rest("host-local")
    return Node("ipam", [*(node for _, node in subnets), *routes, *settings, *extra])


def _subnets(keys: Keys) -> list[tuple[int, Node]]:
    """The subnets of the range sets, IPv4 first, as netc writes them."""
    legacy = {
        k: keys.left.pop(k)
        for k in ("subnet", "rangeStart", "rangeEnd", "gateway")
        if k in keys.left
    }
    sets: list[list[tuple[Any, Path]]] = []
    if legacy:
        keys.report.note(keys.path, "the top-level subnet is written as the first range set")
        sets.append([(legacy, keys.path)])
    ranges = keys.take("ranges", list, "a list of range sets") or []
    for index, entries in enumerate(ranges):
        where = (*keys.at("ranges"), index)
        if not isinstance(entries, list) or not entries:
            keys.report.warn(
                where,
                f"expected a list of ranges, found {show(entries)}: dropped "
                "(host-local refuses it)",
            )
            continue
        sets.append([(entry, (*where, position)) for position, entry in enumerate(entries)])
    read = [[s for s in (_subnet(e, p, keys.report) for e, p in entries) if s] for entries in sets]
    return _by_family([r for r in read if r], keys)


def _by_family(sets: Sequence[list[tuple[int, Node, Path]]], keys: Keys) -> list[tuple[int, Node]]:
    """One range set per family: what netc writes, with what that changes reported."""
    seen: dict[int, Path] = {}
    for entries in sets:
        family, _, where = entries[0]
        set_path = where[:-1]
        for other, _, path in entries[1:]:
            if other != family:
                keys.report.warn(
                    path,
                    "a range set mixes IPv4 and IPv6 (host-local refuses "
                    "it): kept in its family's set",
                )
        if family in seen:
            keys.report.warn(
                set_path,
                f"a second IPv{family} range set would give pods a "
                f"second IPv{family} address; netc gives one per family: its "
                f"ranges join the set at {format_path(seen[family])}",
            )
        seen.setdefault(family, set_path)
    if list(seen) == [6, 4]:
        keys.report.warn(keys.at("ranges"), "netc writes the IPv4 range set first")
    flat = [(family, node) for entries in sets for family, node, _ in entries]
    return sorted(flat, key=lambda item: item[0])


def _subnet(entry: Any, path: Path, report: Report) -> tuple[int, Node, Path] | None:
    """One host-local range as `subnet CIDR { range A .. B; gateway G }`."""
    found = _with_cidr(entry, path, report, "a range", "subnet")
    if found is None:
        return None
    keys, network = found
    body = _range(keys, network)
    gateway = keys.take("gateway", str, "an address")
    if gateway is not None:
        address = _address(gateway)
        usable = _inside(address, network) and (
            network.version == 6
            or address not in (network.network_address, network.broadcast_address)
        )
        if usable:
            body.append(Node(f"gateway {address}"))
        else:
            report.warn(
                keys.at("gateway"),
                f"{show(gateway)} is no host address of {network}: dropped (host-local refuses it)",
            )
    keys.rest("a host-local range")
    return network.version, Node(f"subnet {network}", body or None), path


def _range(keys: Keys, network: IPNetwork) -> list[Node]:
    """`range A .. B`; a bad end is reported at its key and the range dropped.

    Both ends are of the network's family, so they compare as integers.
    """
    given = {k: keys.take(k, str, "an address") for k in ("rangeStart", "rangeEnd")}
    if not any(given.values()):
        for name in (k for k, text in given.items() if text == ""):
            keys.report.note(keys.at(name), "an empty address sets no end: left out")
        return []
    last = network.broadcast_address - (1 if network.version == 4 else 0)
    defaults = {"rangeStart": network.network_address + 1, "rangeEnd": last}
    ends: dict[str, IPAddress] = {}
    for name, text in given.items():
        address = _address(text) if text else defaults[name]
        if address is None or (text and not _inside(address, network)):
            keys.report.warn(
                keys.at(name),
                f"{text} is not an address in {network}: the "
                "range is dropped (host-local refuses it)",
                also=(keys.path,),
            )
            return []
        ends[name] = address
    start, end = ends["rangeStart"], ends["rangeEnd"]
    if int(end) < int(start):
        keys.report.warn(
            keys.at("rangeEnd"),
            f"the range {start} .. {end} runs backwards: dropped",
            also=(keys.path,),
        )
        return []
    for name, text in given.items():
        if not text:
            keys.report.note(
                keys.at(name),
                f"netc writes both ends of a range: the default {ends[name]} is written out",
            )
    return [Node(f"range {start} .. {end}")]


def _route(entry: Any, path: Path, families: set[int], report: Report) -> Node | None:
    found = _with_cidr(entry, path, report, "a route", "dst")
    if found is None:
        return None
    keys, destination = found
    gateway_text = keys.take("gw", str, "an address")
    gateway = _address(gateway_text) if gateway_text is not None else None
    keys.rest("a route")
    if destination.version not in families:
        report.warn(path, f"pods get no IPv{destination.version} address for this route: dropped")
        return None
    if gateway_text is not None and (gateway is None or gateway.version != destination.version):
        report.warn(
            keys.at("gw"),
            f"{show(gateway_text)} is no IPv{destination.version} "
            "address: the route goes through the subnet's gateway instead",
        )
        gateway = None
    return Node(f"route {destination}" + (f" via {gateway}" if gateway else ""))


def _with_cidr(
    entry: Any, path: Path, report: Report, what: str, key: str
) -> tuple[Keys, IPNetwork] | None:
    """The keys of a range or route object and its CIDR under `key`; None when unusable.

    An unusable object is reported once and dropped whole.
    """
    if not isinstance(entry, dict):
        report.warn(path, f"expected {what} object, found {show(entry)}: dropped")
        return None
    keys = Keys(entry, path, report)
    text = keys.take(key, str, "a CIDR")
    if text is None:
        report.warn(path, f"{what} without `{key}`: dropped")
    network = _cidr(text, keys.at(key), report) if text is not None else None
    return None if network is None else (keys, network)


def _cidr(text: str, path: Path, report: Report) -> IPNetwork | None:
    """A subnet or destination; host bits are cleared and reported."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        report.warn(path, f"{show(text)} is not a CIDR: dropped")
        return None
    if "/" not in text:
        report.warn(path, f"{show(text)} has no prefix length: dropped")
        return None
    if str(network) != text:
        report.warn(path, f"{show(text)} has host bits set: written as {network}")
    return network


def _inside(address: IPAddress | None, network: IPNetwork) -> bool:
    """Whether an address (None when unreadable) lies in a network of its family."""
    return address is not None and address.version == network.version and address in network


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def portmap(plugin: Mapping[str, Any], path: Path, report: Report) -> Node:
    """`hostport` (with `snat off`) from the portmap plugin."""
    keys = Keys(plugin, path, report)
    keys.take("type", str, "a plugin type")
    if "portMappings" not in _capabilities(keys, ("portMappings",), "portmap"):
        report.warn(
            keys.at("capabilities"),
            "without the portMappings capability portmap maps "
            "nothing; netc's `hostport` declares it",
        )
    snat = keys.take("snat", bool, "true or false")
    if snat is True:
        report.note(keys.at("snat"), "true is the default: left out")
    keys.rest("the portmap plugin")
    return Node("hostport", [Node("snat off")] if snat is False else None)


def bandwidth(plugin: Mapping[str, Any], path: Path, report: Report) -> Node:
    """`bandwidth` (the capability) or `bandwidth { limit ... }` (static limits)."""
    keys = Keys(plugin, path, report)
    keys.take("type", str, "a plugin type")
    capability = "bandwidth" in _capabilities(keys, ("bandwidth",), "bandwidth")
    limits = [part for direction in DIRECTIONS if (part := _limit(keys, direction))]
    keys.rest("the bandwidth plugin")
    if limits:
        if capability:
            report.warn(
                keys.at("capabilities"),
                "netc writes static limits or the capability, "
                "not both: the static `limit` is kept and the pods' annotations ignored",
            )
        return Node("bandwidth", [Node("limit " + " ".join(limits))])
    if not capability:
        report.warn(
            keys.at("capabilities"),
            "neither limits nor the bandwidth capability: "
            "written as `bandwidth` alone, which declares the capability",
        )
    return Node("bandwidth")


def _limit(keys: Keys, direction: str) -> str | None:
    """`ingress RATE burst SIZE` for one direction's static keys, or None."""
    rate_key, burst_key = f"{direction}Rate", f"{direction}Burst"
    rate = keys.take(rate_key, int, "a rate in bit/s")
    burst = keys.take(burst_key, int, "a burst in bits")
    if not rate:
        if rate == 0 or burst is not None:
            keys.report.warn(
                keys.at(rate_key), "no rate, no limit: dropped", also=(keys.at(burst_key),)
            )
        return None
    if not MIN_RATE <= rate <= MAX_RATE:
        keys.report.warn(
            keys.at(rate_key),
            f"{rate} bit/s is outside what netc accepts (1k..1P): dropped",
            also=(keys.at(burst_key),),
        )
        return None
    if burst is not None and not 8 <= burst < (2**32 - 1) * 8:
        keys.report.warn(
            keys.at(burst_key), f"a burst of {burst} bits is outside 8 bits .. 4 GiB: dropped"
        )
        burst = None
    built = bucket(rate, burst, bound=False).burst_bits
    if burst is None:
        keys.report.warn(
            keys.at(burst_key),
            "the bandwidth plugin refuses a rate without a "
            f"burst; netc writes its default bucket, {built} bits",
        )
    elif built != burst:
        keys.report.warn(
            keys.at(burst_key),
            f"netc writes {built} bits: buckets are whole "
            "bytes, at least 16 KiB (TBF drops a packet larger than its bucket)",
        )
    part = f"{direction} {format_quantity(rate)}"
    return part + (f" burst {format_quantity(burst)}" if burst else "")
