"""Routing to the other nodes of a cluster: the VXLAN device, routes, neighbour and FDB entries.

What netc owns on a node, and how it knows:

    routes     those of its route protocol number (`RTPROT_NETC`, 78): a
               route of any other protocol is never replaced or removed --
               one in the way of a peer's route is refused
    links      those whose alias is the cluster's owner alias ("netc cluster
               NAME"); a link of the planned device's name without it is
               refused.  The kernel ignores an alias given at creation, so
               netc sets it right after; a VXLAN device of the planned name
               that has no alias but the node's derived MAC is one whose
               creation was interrupted in between, and is adopted.
    entries    neighbour and FDB entries on netc's own VXLAN device

Every kind is read with one dump per run (`Dumps`, kept in `run.memo`), so
1000 peers cost one route dump and one entry dump, not a thousand.  The
prune operation comes last and removes what netc owns within the cluster's
pod CIDRs and devices but the plan no longer lists: the leftovers of a peer
removed from the source, even while netc was not running.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence

from compiler.datatypes import field, frozen, mutable
from compiler.ir import subnet_within
from compiler.planner.ops import Observation, Operation, Where
from compiler.planner.params import (
    FdbParams,
    LinkVxlanParams,
    NeighbourParams,
    NodePruneParams,
    RouteNodeParams,
)
from runtime.netlink.rtnl import (
    NUD_PERMANENT,
    RTNH_F_ONLINK,
    FdbEntry,
    Link,
    Neighbour,
    Route,
    Rtnl,
)
from runtime.netlink.vxlan import Vxlan, vxlan_data, vxlan_settings
from runtime.ops.base import (
    IN_PLACE_NOW,
    Blockable,
    Handler,
    KeptByDel,
    OperationRefused,
    Run,
    blocked,
    differs,
    identified_link,
    missing,
)

PROTOCOL_NAMES = {2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp"}


class Dumps:
    """The node's routes, entries and links, each dumped once per run and kept current.

    Handlers that change something update the copy (or `forget` it when a
    change has consequences they cannot follow, such as a device deleted
    with everything on it).
    """

    def __init__(self, rtnl: Rtnl) -> None:
        self.rtnl = rtnl
        self._routes: dict[int, dict[str, list[Route]]] = {}
        self._neighbours: dict[tuple[int, int], dict[str, Neighbour]] = {}
        self._fdb: dict[int, dict[str, list[FdbEntry]]] = {}
        self._names: dict[int, str] | None = None

    def routes(self, family: int) -> dict[str, list[Route]]:
        """The main table's routes of a family, by destination."""
        if family not in self._routes:
            by_dst: dict[str, list[Route]] = {}
            for route in self.rtnl.routes(family):
                by_dst.setdefault(route.dst, []).append(route)
            self._routes[family] = by_dst
        return self._routes[family]

    def neighbours(self, link: Link, family: int) -> dict[str, Neighbour]:
        """A link's neighbour entries of a family, by address."""
        key = (link.index, family)
        if key not in self._neighbours:
            self._neighbours[key] = {n.address: n for n in self.rtnl.neighbours(link, family)}
        return self._neighbours[key]

    def fdb(self, link: Link) -> dict[str, list[FdbEntry]]:
        """A VXLAN device's forwarding entries, by MAC."""
        if link.index not in self._fdb:
            by_mac: dict[str, list[FdbEntry]] = {}
            for entry in self.rtnl.fdb(link):
                by_mac.setdefault(entry.lladdr, []).append(entry)
            self._fdb[link.index] = by_mac
        return self._fdb[link.index]

    def names(self) -> dict[int, str]:
        """Link names by index, for messages."""
        if self._names is None:
            self._names = {link.index: link.name for link in self.rtnl.links()}
        return self._names

    def forget(self) -> None:
        """Drop every copy: the next question dumps again."""
        self._routes.clear()
        self._neighbours.clear()
        self._fdb.clear()
        self._names = None


def dumps(run: Run) -> Dumps:
    """The run's dumps (made on first use)."""
    found = run.memo.get(Dumps)
    if found is None:
        found = run.memo[Dumps] = Dumps(run.host.node)
    return found


# the VXLAN device


def foreign(link: Link, params: LinkVxlanParams) -> str | None:
    """Why a link of the device's name is not netc's to change (None: it is netc's)."""
    if link.kind != "vxlan":
        return f"{link.name} is a {link.kind or 'device'}, not netc's VXLAN device"
    if link.alias == params.alias or (link.alias is None and link.mac == params.mac):
        return None
    return (
        f"{link.name} is a VXLAN device netc did not create for this cluster (alias "
        f"{link.alias!r}, not {params.alias!r})"
    )


def vxlan_differences(params: LinkVxlanParams, link: Link) -> tuple[list[str], list[str]]:
    """How netc's device differs from the plan: (what needs a new device, what is fixed in place).

    The tunnel's settings (VNI, port, local address, learning) are fixed at
    creation; the MTU, MAC and alias can be changed on the live device.
    """
    have = vxlan_settings(link)
    assert have is not None
    want = Vxlan(params.vni, params.port, params.local)
    rebuild = [
        f"{name} {mine}, want {theirs}"
        for name, mine, theirs in (
            ("vni", have.vni, want.vni),
            ("port", have.port, want.port),
            ("local", have.local, want.local),
            ("learning", have.learning, want.learning),
        )
        if mine != theirs
    ]
    repair = [
        f"{name} {mine}, want {theirs}"
        for name, mine, theirs in (
            ("mtu", link.mtu, params.mtu),
            ("mac", link.mac, params.mac),
            ("alias", link.alias, params.alias),
        )
        if mine != theirs
    ]
    return rebuild, repair


def clash(params: LinkVxlanParams, link: Link) -> str | None:
    """Why another VXLAN device keeps the planned one from being made or brought up, and the fix.

    The kernel refuses a second device of a family with the VNI and UDP port
    of another ("A VXLAN device with the specified VNI already exists"),
    whatever their local addresses; and devices that receive differently
    (external, GBP, GPE) cannot both hold a port open (the second one up gets
    "Address already in use").  flannel's `flannel.1` has netc's defaults:
    VNI 1, port 8472.  None when `link` is in nobody's way.
    """
    theirs = vxlan_settings(link)
    if (
        theirs is None
        or link.name == params.name
        or theirs.port != params.port
        or theirs.family != family(params.local)
    ):
        return None
    port = f"UDP port {theirs.port}"
    if not theirs.receive and theirs.vni == params.vni:
        return (
            f"{link.name} (VXLAN {theirs.vni}, {port}) is in the way: the kernel refuses "
            f"a second VXLAN device with VNI {theirs.vni} on {port}; "
            + _clash_fix(link, "`vni` or `port`")
        )
    if theirs.receive and link.up:
        return (
            f"{link.name} (VXLAN {theirs.vni}, {port}, {', '.join(theirs.receive)}) holds "
            f"{port} open for another kind of VXLAN device: netc's could not come up; "
            + _clash_fix(link, "`port`")
        )
    return None


FLANNEL_DEVICE = re.compile(r"flannel(?:-v6)?\.[0-9]+")
"""flannel's VXLAN devices: `flannel.VNI`, and `flannel-v6.VNI` for an IPv6 network."""


def _clash_fix(link: Link, settings: str) -> str:
    if FLANNEL_DEVICE.fullmatch(link.name):
        return (
            f"it is flannel's: remove flannel first (kubectl delete -f kube-flannel.yml; "
            f"ip link del {link.name}), or give the cluster's routing another {settings}"
        )
    return (
        f"remove it (ip link del {link.name}) if nothing uses it, or give the cluster's "
        f"routing another {settings}"
    )


class LinkVxlanHandler(KeptByDel, Blockable[LinkVxlanParams]):
    """The cluster's VXLAN device: created, recreated when its tunnel differs, else repaired.

    A device of this cluster under another name (the routing's `device`
    renamed) that holds the VNI and port is netc's old one: it goes first,
    before the prune would, since the new one could not be made beside it.
    """

    params = LinkVxlanParams

    def ensure(self, op: Operation[LinkVxlanParams], run: Run) -> bool:
        params = op.params
        link = run.host.node.link(params.name)
        obstacle = self._obstacle(params, link, run)
        if obstacle:
            raise OperationRefused(obstacle)
        if link is not None:
            rebuild, repair = vxlan_differences(params, link)
            if not rebuild:
                self._repair(link, params, run)
                if repair:
                    run.note(op, "repaired: " + ", ".join(repair))
                return bool(repair)
            run.host.node.delete(link.name)
            run.note(op, "recreated: " + ", ".join(rebuild))
        for old in run.host.node.links():
            if old.alias == params.alias and clash(params, old):
                run.host.node.delete(old.name)
                run.note(op, f"replaced {old.name}, which held its VNI and port")
        run.host.node.create(
            params.name,
            "vxlan",
            params.mtu,
            vxlan_data(Vxlan(params.vni, params.port, params.local)),
            mac=params.mac,
            alias=params.alias,
        )
        dumps(run).forget()  # a new link; the old one's routes and entries went with it
        return True

    def _repair(self, link: Link, params: LinkVxlanParams, run: Run) -> None:
        node = run.host.node
        if link.mtu != params.mtu:
            node.set_mtu(link, params.mtu)
        if link.mac != params.mac:
            node.set_mac(link, params.mac)
        if link.alias != params.alias:
            node.set_alias(link, params.alias)

    def obstacle(self, op: Operation[LinkVxlanParams], run: Run) -> str | None:
        return self._obstacle(op.params, run.host.node.link(op.params.name), run)

    @staticmethod
    def _obstacle(params: LinkVxlanParams, link: Link | None, run: Run) -> str | None:
        """A foreign link of the device's name, else the devices that clash with it."""
        if link is not None:
            refusal = foreign(link, params)
            if refusal:
                return (
                    f"{refusal}; netc never changes links it does not own: remove it (ip "
                    f"link del {link.name}), or name another `device` in the cluster's "
                    "routing"
                )
            if not vxlan_differences(params, link)[0]:
                return None  # netc's, as planned: the kernel let no other device take its VNI
        clashes = [
            why
            for other in run.host.node.links()
            if other.alias != params.alias and (why := clash(params, other))
        ]
        return "; ".join(clashes) or None

    def observe(self, op: Operation[LinkVxlanParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.name)
        obstacle = self._obstacle(op.params, link, run)
        if obstacle:
            return blocked(obstacle)
        if link is None:
            return missing()
        rebuild, repair = vxlan_differences(op.params, link)
        if rebuild:
            return differs(", ".join(rebuild) + " (apply recreates the device)")
        return differs(", ".join(repair)) if repair else IN_PLACE_NOW


# routes to the peers


def describe(route: Route, names: Mapping[int, str] | None = None) -> str:
    """A route as `ip route` would show it, roughly."""
    text = route.dst + (f" via {route.gateway}" if route.gateway else "")
    if route.oif:
        text += f" dev {(names or {}).get(route.oif, f'#{route.oif}')}"
    if route.flags & RTNH_F_ONLINK:
        text += " onlink"
    return f"{text} proto {PROTOCOL_NAMES.get(route.protocol, route.protocol)}"


def matches(route: Route, via: str, link: Link | None) -> bool:
    """Whether an owned route is the planned one: its gateway, and its device when one is named.

    Addresses are compared as text: the plan and rtnl both spell them as
    `ipaddress` does (parsing a thousand of them would cost more than the dump).
    """
    if route.gateway != via:
        return False
    return link is None or (route.oif == link.index and bool(route.flags & RTNH_F_ONLINK))


def family(address: str) -> int:
    """4 or 6, from an address or CIDR as text."""
    return 6 if ":" in address else 4


@frozen
class RouteState:
    """The routes to one destination, sorted: netc's own and everyone else's."""

    ours: list[Route]
    theirs: list[Route]

    @classmethod
    def of(cls, routes: Iterable[Route], protocol: int) -> RouteState:
        """Split the routes to a destination by owner."""
        found = list(routes)
        return cls(
            [r for r in found if r.protocol == protocol],
            [r for r in found if r.protocol != protocol],
        )


class RouteNodeHandler(KeptByDel, Blockable[RouteNodeParams]):
    """A route to a peer's pod subnet, carrying netc's route protocol."""

    params = RouteNodeParams

    def ensure(self, op: Operation[RouteNodeParams], run: Run) -> bool:
        dst, via, protocol = op.params.dst, op.params.via, op.params.protocol
        link = identified_link(run, Where.NODE, op.params.dev) if op.params.dev else None
        table = dumps(run).routes(family(dst))
        state = RouteState.of(table.get(dst, ()), protocol)
        if state.theirs:
            raise OperationRefused(_in_the_way(dst, state, run))
        if any(matches(r, via, link) for r in state.ours):
            return False
        run.host.node.replace_route(dst, via, link, protocol)
        if state.ours:
            run.note(op, "replaced " + "; ".join(describe(r, _names(run)) for r in state.ours))
        table[dst] = [
            Route(dst, via, link.index if link else 0, protocol, RTNH_F_ONLINK if link else 0)
        ]
        return True

    def obstacle(self, op: Operation[RouteNodeParams], run: Run) -> str | None:
        state = self._state(op, run)
        return _in_the_way(op.params.dst, state, run) if state.theirs else None

    def observe(self, op: Operation[RouteNodeParams], run: Run) -> Observation:
        via = op.params.via
        link = run.host.node.link(op.params.dev) if op.params.dev else None
        state = self._state(op, run)
        if state.theirs:
            return blocked(_in_the_way(op.params.dst, state, run))
        if op.params.dev and link is None:
            return missing(f"no device {op.params.dev}")
        if any(matches(r, via, link) for r in state.ours):
            return IN_PLACE_NOW
        if state.ours:
            return differs("is " + "; ".join(describe(r, _names(run)) for r in state.ours))
        return missing()

    @staticmethod
    def _state(op: Operation[RouteNodeParams], run: Run) -> RouteState:
        dst = op.params.dst
        return RouteState.of(dumps(run).routes(family(dst)).get(dst, ()), op.params.protocol)


def _in_the_way(dst: str, state: RouteState, run: Run) -> str:
    return (
        f"a route to {dst} that netc does not own is in the way ("
        f"{'; '.join(describe(r, _names(run)) for r in state.theirs)}): netc never replaces "
        "a route it did not add; remove it, or give the peer another subnet"
    )


def _names(run: Run) -> dict[int, str]:
    return dumps(run).names()


# neighbour and forwarding entries


class NeighbourHandler(KeptByDel, Handler[NeighbourParams]):
    """A permanent neighbour entry on the VXLAN device: a peer's VTEP address and MAC."""

    params = NeighbourParams

    def ensure(self, op: Operation[NeighbourParams], run: Run) -> bool:
        link = identified_link(run, Where.NODE, op.params.dev)
        address, lladdr = op.params.address, op.params.lladdr
        entries = dumps(run).neighbours(link, family(address))
        if self._problem(entries.get(address), lladdr) is None:
            return False
        run.host.node.replace_neighbour(link, address, lladdr)
        entries[address] = Neighbour(link.index, address, lladdr, NUD_PERMANENT)
        return True

    def observe(self, op: Operation[NeighbourParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.dev)
        if link is None:
            return missing(f"no device {op.params.dev}")
        address = op.params.address
        entry = dumps(run).neighbours(link, family(address)).get(address)
        if entry is None:
            return missing()
        problem = self._problem(entry, op.params.lladdr)
        return differs(problem) if problem else IN_PLACE_NOW

    @staticmethod
    def _problem(entry: Neighbour | None, lladdr: str) -> str | None:
        if entry is None:
            return "absent"
        if entry.lladdr != lladdr:
            return f"lladdr {entry.lladdr}, want {lladdr}"
        return None if entry.permanent else f"not permanent (state {entry.state:#x})"


class FdbHandler(KeptByDel, Handler[FdbParams]):
    """A forwarding entry on the VXLAN device: a peer's MAC behind its underlay address."""

    params = FdbParams

    def ensure(self, op: Operation[FdbParams], run: Run) -> bool:
        link = identified_link(run, Where.NODE, op.params.dev)
        lladdr, dst = op.params.lladdr, op.params.dst
        table = dumps(run).fdb(link)
        present = table.get(lladdr, [])
        if self._problem(present, dst) is None:
            return False
        node = run.host.node
        if len(present) > 1:  # a replace changes only the first remote of a MAC
            node.delete_fdb(link, lladdr)
        node.replace_fdb(link, lladdr, dst)
        table[lladdr] = [FdbEntry(link.index, lladdr, dst, NUD_PERMANENT)]
        return True

    def observe(self, op: Operation[FdbParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.dev)
        if link is None:
            return missing(f"no device {op.params.dev}")
        present = dumps(run).fdb(link).get(op.params.lladdr, [])
        if not present:
            return missing()
        problem = self._problem(present, op.params.dst)
        return differs(problem) if problem else IN_PLACE_NOW

    @staticmethod
    def _problem(present: Sequence[FdbEntry], dst: str) -> str | None:
        if not present:
            return "absent"
        remotes = [e.dst for e in present]
        if remotes != [dst]:
            return f"forwards to {', '.join(map(str, remotes))}, want {dst}"
        return None if present[0].state & NUD_PERMANENT else "not permanent"


# pruning


@mutable
class Removals:
    """What netc owns on the node for a cluster and the plan no longer has."""

    links: list[Link] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    fdb: list[FdbEntry] = field(default_factory=list)

    def lines(self, names: Mapping[int, str]) -> list[str]:
        """One line per object, as `netc apply` prints them."""
        return (
            [
                f"link {link.name} ({link.kind or 'device'}, alias {link.alias!r})"
                for link in self.links
            ]
            + [f"route {describe(route, names)}" for route in self.routes]
            + [
                f"neighbour {n.address} lladdr {n.lladdr} dev {names.get(n.index)}"
                for n in self.neighbours
            ]
            + [f"fdb {e.lladdr} dst {e.dst} dev {names.get(e.index)}" for e in self.fdb]
        )

    def __bool__(self) -> bool:
        return bool(self.links or self.routes or self.neighbours or self.fdb)


def stale_links(params: NodePruneParams, links: Iterable[Link]) -> list[Link]:
    """Links with the cluster's owner alias other than the planned device."""
    return [link for link in links if link.alias == params.alias and link.name != params.device]


def stale_routes(
    params: NodePruneParams, routes: Iterable[Route], gone: Iterable[int] = ()
) -> list[Route]:
    """The routes of netc's protocol inside the pod CIDRs that the plan does not list.

    Routes through a link in `gone` are left out: they go with their link.
    """
    cidrs = [ipaddress.ip_network(c) for c in params.pod_cidrs]
    kept = set(params.routes)  # as the plan and rtnl spell them: no parsing needed
    dead = set(gone)
    found = []
    for route in routes:
        if route.protocol != params.protocol or route.dst in kept or route.oif in dead:
            continue
        dst = ipaddress.ip_network(route.dst)
        if any(subnet_within(dst, c) for c in cidrs):
            found.append(route)
    return found


def stale_entries(
    params: NodePruneParams, neighbours: Iterable[Neighbour], fdb: Iterable[FdbEntry]
) -> tuple[list[Neighbour], list[FdbEntry]]:
    """Permanent neighbours and forwarding entries of the device that the plan does not list."""
    addresses = set(params.neighbours)
    macs = set(params.fdb)
    return (
        [n for n in neighbours if n.permanent and n.address not in addresses],
        [e for e in fdb if e.lladdr not in macs],
    )


class NodePruneHandler(KeptByDel, Handler[NodePruneParams]):
    """Remove what netc owns for the cluster and the plan no longer has; report each object."""

    params = NodePruneParams

    def ensure(self, op: Operation[NodePruneParams], run: Run) -> bool:
        removals = self._removals(op, run)
        if not removals:
            return False
        run.note(op, *removals.lines(_names(run)))
        node = run.host.node
        for link in removals.links:
            node.delete(link.name)
        for route in removals.routes:
            node.delete_route(route, op.params.protocol)
        device = self._device(op, run)
        for neighbour in removals.neighbours:
            assert device is not None
            node.delete_neighbour(device, neighbour.address)
        for entry in removals.fdb:
            assert device is not None
            node.delete_fdb(device, entry.lladdr)
        dumps(run).forget()
        return True

    def observe(self, op: Operation[NodePruneParams], run: Run) -> Observation:
        removals = self._removals(op, run)
        if not removals:
            return IN_PLACE_NOW
        return differs("would remove " + "; ".join(removals.lines(_names(run))))

    def _removals(self, op: Operation[NodePruneParams], run: Run) -> Removals:
        params = op.params
        links = stale_links(params, run.host.node.links())
        families = sorted({family(c) for c in params.pod_cidrs})
        routes = [
            r
            for family in families
            for listed in dumps(run).routes(family).values()
            for r in listed
        ]
        found = Removals(links, stale_routes(params, routes, {link.index for link in links}))
        device = self._device(op, run)
        if device is not None:
            neighbours = [
                n for family in families for n in dumps(run).neighbours(device, family).values()
            ]
            fdb = [e for listed in dumps(run).fdb(device).values() for e in listed]
            found.neighbours, found.fdb = stale_entries(params, neighbours, fdb)
        return found

    @staticmethod
    def _device(op: Operation[NodePruneParams], run: Run) -> Link | None:
        """The planned VXLAN device, if there is one and it is netc's."""
        if not op.params.device:
            return None
        link = run.host.node.link(op.params.device)
        if link is None or link.alias != op.params.alias:
            return None
        return link


HANDLERS = (
    LinkVxlanHandler(),
    RouteNodeHandler(),
    NeighbourHandler(),
    FdbHandler(),
    NodePruneHandler(),
)
