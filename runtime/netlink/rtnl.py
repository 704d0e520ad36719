"""rtnetlink verbs for links, addresses, routes, neighbour and FDB entries, in one namespace.

`Rtnl` wraps a `Channel` opened in some namespace and is netc's one
rtnetlink client.  What a pod's call needs: look links up, create bridges,
veth pairs and ifbs, set them up, enslave, set hairpin, add addresses and
routes, forget a neighbour, and read all of that back for CHECK and `netc
plan --live`.  What `netc apply --node` needs besides:

    links       a VXLAN device (its settings: `runtime.netlink.vxlan`), its
                MAC and the owner's alias
    routes      replaced, listed and deleted with a route protocol number of
                netc's own (through a gateway, or onlink through a device); the
                delete names the protocol too, so the kernel itself refuses to
                remove anybody else's route
    neighbours  permanent entries (an address's MAC) on a device
    FDB         a VXLAN device's forwarding entries: a MAC behind an underlay
                address (AF_BRIDGE neighbour messages with NTF_SELF)

Every change of those is a replace (NLM_F_CREATE | NLM_F_REPLACE), so
repeating one is harmless; removals tolerate absence.  Traffic control lives
in `runtime.netlink.tc`.
"""

from __future__ import annotations

import _socket
import errno
import ipaddress
import struct
from collections.abc import Sequence

from compiler.datatypes import field, frozen, mutable
from compiler.ir import mac_bytes, mac_text
from runtime.netlink import wire
from runtime.netlink.channel import Channel, NetlinkError
from runtime.netlink.wire import (
    Attr,
    get_s32,
    get_string,
    get_u32,
    parse_attrs,
    string,
    u8,
    u32,
)

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
"""Leave a link's counters out of its description (Linux 4.20; older kernels ignore it):
netc never reads them, and they are most of its bytes."""
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWNSID, RTM_GETNSID = 88, 90

IFINFO = struct.Struct("=BxHiII")
NDMSG = struct.Struct("=BxHiHBB")
NDA_DST, NDA_LLADDR, NDA_IFINDEX = 1, 2, 8
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
IFADDR = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
RTGENMSG = struct.Struct("=Bxxx")

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 10, 18, 20, 28, 37
IFLA_GROUP = 27
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_BRPORT_MODE = 4
VETH_INFO_PEER = 1
IFF_UP, IFF_PROMISC = 0x1, 0x100

IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255
RTNH_F_ONLINK = 0x04
NETNSA_NSID, NETNSA_FD = 1, 3
NETNSA_NSID_NOT_ASSIGNED = -1

FAMILIES = {4: _socket.AF_INET, 6: _socket.AF_INET6}
ABSENT = (errno.ENODEV, errno.ENOENT)
"""What the kernel answers about a link or entry that does not exist."""
GONE = (*ABSENT, errno.ESRCH)
"""What the kernel answers when the object to remove is not there (routes say ESRCH)."""


@frozen
class Link:
    """What the kernel reports about one network interface.

    `peer` is IFLA_LINK: a veth's other end (a vlan's parent) by index, in
    this namespace -- or, when `netnsid` is not None, in the namespace this
    one numbers `netnsid` (IFLA_LINK_NETNSID).  An index alone says little:
    every namespace counts its own.
    """

    index: int
    name: str
    kind: str | None
    flags: int
    mtu: int
    mac: str
    master: int
    peer: int
    netnsid: int | None
    hairpin: bool | None
    alias: str | None = None
    info_data: bytes = field(default=b"", compare=False)
    """The kind's own settings (IFLA_INFO_DATA), undecoded: a VXLAN's VNI, port, address
    (left out of comparisons: a bridge's hold timers tick)."""
    group: int = 0
    """The link group (IFLA_GROUP); 0 is the kernel's default group."""

    @property
    def up(self) -> bool:
        """Administratively up."""
        return bool(self.flags & IFF_UP)

    @property
    def promiscuous(self) -> bool:
        """Promiscuous mode on."""
        return bool(self.flags & IFF_PROMISC)


@frozen
class Address:
    """An address on an interface, as `ip/prefix` text with its interface index."""

    index: int
    cidr: str


@frozen
class Route:
    """A route of the main table: destination CIDR, gateway (or None), output interface.

    `protocol` says who added it (RTPROT_*: netc's routes carry their own
    number); `flags` are the route's RTNH_F_* flags (onlink).
    """

    dst: str
    gateway: str | None
    oif: int
    protocol: int = 0
    flags: int = 0


@frozen
class Neighbour:
    """A neighbour entry: on which link, which address, its MAC (if any) and NUD state."""

    index: int
    address: str
    lladdr: str | None
    state: int

    @property
    def permanent(self) -> bool:
        """Set by hand (or by netc), never aged out or resolved again."""
        return bool(self.state & NUD_PERMANENT)


@frozen
class FdbEntry:
    """A forwarding entry of a VXLAN device: frames for `lladdr` go to underlay `dst`."""

    index: int
    lladdr: str
    dst: str | None
    state: int


@mutable
class LinkChanges:
    """How many link changes the handles of one call have asked for.

    A link looked up before the latest change is looked up again: a veth
    deleted by the node's handle also changes what the pod's handle sees.
    A creation changes no link there was, so it only makes the lookups
    that found none stale: a veth created by the node's handle may be the
    link the pod's handle found missing.
    """

    count: int = 0
    """Changes that may have changed any link (a deletion, a lock waited for)."""
    creations: int = 0
    """Links created."""


def _still_true(lookup: tuple[int, int, Link | None], changes: int, creations: int) -> bool:
    """Whether a lookup made after `lookup[0]` changes and `lookup[1]` creations holds now."""
    made_after, created_after, found = lookup
    return made_after == changes and (found is not None or created_after == creations)


class Rtnl:
    """rtnetlink in the namespace the socket was opened in.

    A link is looked up by name once until a link changes (`changes`, which
    handles of one call share): a pod's ADD asks for the bridge, its veth
    and its ifb a few times each.  A change to one link (its flags, its
    master, its group) makes only its state stale: what needs no more than
    its identity (`identified`) still takes that lookup.  What other
    processes change meanwhile is not seen until then; `forget_links` says
    when that matters.
    """

    def __init__(self, channel: Channel | None = None, changes: LinkChanges | None = None) -> None:
        self.nl = channel or Channel()
        self.changes = changes if changes is not None else LinkChanges()
        self._looked_up: dict[str, tuple[int, int, Link | None]] = {}
        """Each name's lookup: the changes and creations it was made after, what it found."""
        self._changed: set[str] = set()
        """Links this handle changed since their lookup: their identity holds, not their state."""

    def close(self) -> None:
        """Release the socket."""
        self.nl.close()

    # links

    def link(self, name: str) -> Link | None:
        """The link called `name`, or None."""
        known = self._remembered(name)
        if known is not None and name not in self._changed:
            return known[2]
        changes, creations = self.changes.count, self.changes.creations
        found = self._look_up(name)
        self._looked_up[name] = (changes, creations, found)
        self._changed.discard(name)
        return found

    def identified(self, name: str) -> Link | None:
        """The link called `name`, or None, for its identity alone: index, name, kind and MAC.

        Its flags, MTU, master, group or hairpin may be older than this
        handle's latest change to it: a tc qdisc, an address, a route or the
        result's MAC needs none of them.  A new MAC (`set_mac`, a bridge
        given a port) is asked for again.
        """
        known = self._remembered(name)
        return known[2] if known is not None else self.link(name)

    def _remembered(self, name: str) -> tuple[int, int, Link | None] | None:
        """The lookup of `name` no change or creation since has made stale, if any."""
        known = self._looked_up.get(name)
        if known is not None and _still_true(known, self.changes.count, self.changes.creations):
            return known
        return None

    def forget_links(self) -> None:
        """Look every link up again: another process may have changed them (a lock waited for)."""
        self.changes.count += 1

    def _look_up(self, name: str) -> Link | None:
        body = IFINFO.pack(0, 0, 0, 0, 0) + string(IFLA_IFNAME, name).encode() + _NO_STATS
        try:
            return _link(self.nl.get(RTM_GETLINK, body, f"look up link {name}"))
        except NetlinkError as error:
            if error.errno in ABSENT:
                return None
            raise

    def links(self) -> list[Link]:
        """Every link of the namespace."""
        body = IFINFO.pack(0, 0, 0, 0, 0) + _NO_STATS
        return [_link(reply) for _, reply in self.nl.dump(RTM_GETLINK, body, "list links")]

    def _change_links(
        self, kind: int, flags: int, body: bytes, what: str, link: Link | None = None
    ) -> None:
        """A request that creates, changes or deletes links; the lookups it makes stale go.

        With `link`, the request changes that link alone: its state is looked
        up again, its identity is still known (`identified`).  A creation (no
        link, NLM_F_CREATE) makes the lookups that found nothing stale, in
        every namespace (a veth's peer is created in the pod's).  Else any
        link of any namespace may have changed (a veth's deletion takes its
        peer too), and every lookup is stale.
        """
        try:
            self.nl.request(kind, flags, body, what)
        finally:
            if link is not None:
                self._changed.add(link.name)
            elif flags & wire.NLM_F_CREATE:
                self.changes.creations += 1
            else:
                self.forget_links()

    def create(
        self,
        name: str,
        kind: str,
        mtu: int | None = None,
        data: list[Attr] | None = None,
        *,
        mac: str | None = None,
        group: int = 0,
        alias: str | None = None,
    ) -> None:
        """Create a link of `kind` (bridge, ifb, veth or vxlan with `data` its settings).

        A `mac` given here is the link's own from the start: a bridge then never
        follows its ports' addresses and takes it as its bridge ID.  An `alias`
        is set right after: on creation the kernel ignores IFLA_IFALIAS.
        """
        info = [string(IFLA_INFO_KIND, kind)]
        if data:
            info.append(Attr(IFLA_INFO_DATA, data))
        attrs = [string(IFLA_IFNAME, name), Attr(IFLA_LINKINFO, info)]
        if mtu:
            attrs.append(u32(IFLA_MTU, mtu))
        if mac:
            attrs.append(Attr(IFLA_ADDRESS, mac_bytes(mac)))
        if group:
            attrs.append(u32(IFLA_GROUP, group))
        self._newlink(None, attrs, wire.NLM_F_CREATE | wire.NLM_F_EXCL, f"create {kind} {name}")
        if alias is not None:
            created = self.link(name)
            if created is None:
                raise NetlinkError(errno.ENODEV, f"find the new {kind} {name}")
            self.set_alias(created, alias)

    def create_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int | None) -> None:
        """A veth pair: `name` here, `peer` created directly in the namespace of the fd."""
        peer_attrs = [string(IFLA_IFNAME, peer), u32(IFLA_NET_NS_FD, peer_netns_fd)]
        if mtu:
            peer_attrs.append(u32(IFLA_MTU, mtu))
        peer_body = IFINFO.pack(0, 0, 0, 0, 0) + b"".join(a.encode() for a in peer_attrs)
        self.create(name, "veth", mtu, [Attr(VETH_INFO_PEER, peer_body)])

    def paired(self, link: Link, peer: Link, peer_netns_fd: int) -> bool:
        """True when `link`, here, is a veth whose other end is `peer` in the namespace of the fd.

        Both halves of the peer's identity must match: its index and its
        namespace, as this namespace numbers it; an interface of the same
        index in a third namespace is not our peer.
        """
        return (
            link.kind == "veth"
            and link.peer == peer.index
            and link.netnsid is not None
            and link.netnsid == self.nsid(peer_netns_fd)
        )

    def nsid(self, netns_fd: int) -> int | None:
        """The id this namespace gives the namespace of `netns_fd`, or None if it gave none.

        The kernel gives one when it first reports a link whose peer is there.
        """
        body = RTGENMSG.pack(_socket.AF_UNSPEC) + u32(NETNSA_FD, netns_fd).encode()
        reply = self.nl.get(RTM_GETNSID, body, "look up a namespace id")
        nsid = get_s32(parse_attrs(reply, RTGENMSG.size), NETNSA_NSID)
        return None if nsid in (None, NETNSA_NSID_NOT_ASSIGNED) else nsid

    def delete(self, name: str) -> bool:
        """Delete a link; False when it did not exist."""
        body = IFINFO.pack(0, 0, 0, 0, 0) + string(IFLA_IFNAME, name).encode()
        return self._tolerate_absent(RTM_DELLINK, body, f"delete link {name}")

    def delete_group(self, group: int) -> bool:
        """Delete every link of a group in one request; False when the group had none.

        The kernel unregisters them as one batch: one wait for RCU readers to
        finish with them, where a request per link waits once per link.
        """
        body = IFINFO.pack(0, 0, 0, 0, 0) + u32(IFLA_GROUP, group).encode()
        return self._tolerate_absent(RTM_DELLINK, body, f"delete link group {group}")

    def set_group(self, link: Link, group: int) -> None:
        """Put a link in a link group."""
        self._newlink(link, [u32(IFLA_GROUP, group)], 0, f"set group of {link.name}")

    def set_flags(
        self, link: Link, up: bool | None = None, promiscuous: bool | None = None
    ) -> None:
        """Set a link up/down and promiscuous on/off; None leaves a flag alone."""
        flags = change = 0
        for wanted, bit in ((up, IFF_UP), (promiscuous, IFF_PROMISC)):
            if wanted is not None:
                change |= bit
                flags |= bit if wanted else 0
        body = IFINFO.pack(0, 0, link.index, flags, change)
        self._change_links(RTM_NEWLINK, 0, body, f"set flags of {link.name}", link)

    def set_mtu(self, link: Link, mtu: int) -> None:
        """Change a link's MTU."""
        self._newlink(link, [u32(IFLA_MTU, mtu)], 0, f"set mtu of {link.name}")

    def set_master(self, link: Link, master: Link) -> None:
        """Enslave a link to a bridge (whose MTU and MAC may follow its ports')."""
        self._newlink(
            link, [u32(IFLA_MASTER, master.index)], 0, f"attach {link.name} to {master.name}"
        )
        self._looked_up.pop(master.name, None)  # its MAC, too, may have followed

    def set_alias(self, link: Link, alias: str) -> None:
        """The link's alias (IFLA_IFALIAS): how netc recognises the links it made."""
        self._newlink(link, [string(IFLA_IFALIAS, alias)], 0, f"set alias of {link.name}")

    def set_mac(self, link: Link, mac: str) -> None:
        """Change a link's MAC address (which `identified` answers with: asked for again)."""
        self._newlink(link, [Attr(IFLA_ADDRESS, mac_bytes(mac))], 0, f"set MAC of {link.name}")
        self._looked_up.pop(link.name, None)

    def set_hairpin(self, link: Link, on: bool) -> None:
        """Turn hairpin mode of a bridge port on or off."""
        slave = [
            string(IFLA_INFO_SLAVE_KIND, "bridge"),
            Attr(IFLA_INFO_SLAVE_DATA, [u8(IFLA_BRPORT_MODE, int(on))]),
        ]
        self._newlink(link, [Attr(IFLA_LINKINFO, slave)], 0, f"set hairpin of {link.name}")

    def _newlink(self, link: Link | None, attrs: Sequence[Attr], flags: int, what: str) -> None:
        """Change `link`, or with None create one."""
        index = link.index if link is not None else 0
        body = IFINFO.pack(0, 0, index, 0, 0) + b"".join(a.encode() for a in attrs)
        self._change_links(RTM_NEWLINK, flags, body, what, link)

    # addresses

    def addresses(self, family: int | None = None, link: Link | None = None) -> list[Address]:
        """Every address of the namespace, or of one link: of one family when given."""
        index = link.index if link is not None else 0
        body = IFADDR.pack(FAMILIES.get(family or 0, 0), 0, 0, 0, index)
        what = f"list addresses of {link.name}" if link is not None else "list addresses"
        with self.nl.strictly():
            replies = self.nl.dump(RTM_GETADDR, body, what)
        return [
            a
            for _, reply in replies
            if (a := _address(reply)) is not None and (not index or a.index == index)
        ]

    def add_address(self, link: Link, cidr: str) -> None:
        """Add `ip/prefix` to a link; an address already there is not an error.

        IPv6 addresses skip duplicate address detection: netc hands them out
        uniquely, and DAD would leave them unusable for a second or two.
        """
        interface = ipaddress.ip_interface(cidr)
        packed = interface.ip.packed
        attrs = [Attr(IFA_LOCAL, packed), Attr(IFA_ADDRESS, packed)]
        if interface.version == 4 and interface.network.prefixlen < 31:
            attrs.append(Attr(IFA_BROADCAST, interface.network.broadcast_address.packed))
        flags = IFA_F_NODAD if interface.version == 6 else 0
        body = IFADDR.pack(
            FAMILIES[interface.version], interface.network.prefixlen, flags, 0, link.index
        ) + b"".join(a.encode() for a in attrs)
        self._tolerate_exists(RTM_NEWADDR, body, f"add {cidr} to {link.name}")

    # routes

    def routes(self, family: int) -> list[Route]:
        """The routes of the main table of one family."""
        body = RTMSG.pack(FAMILIES[family], 0, 0, 0, 0, 0, 0, 0, 0)
        found = []
        for _, reply in self.nl.dump(RTM_GETROUTE, body, "list routes"):
            route = _route(reply, family)
            if route is not None:
                found.append(route)
        return found

    def add_route(self, dst: str, gateway: str | None, link: Link) -> None:
        """A route in the main table through `link`; one already there is not an error."""
        body = _route_message(dst, gateway, link, RTPROT_BOOT)
        self._tolerate_exists(RTM_NEWROUTE, body, f"add route {dst} via {gateway}")

    def replace_route(self, dst: str, via: str, link: Link | None, protocol: int) -> None:
        """Add or replace the route to `dst` of `protocol`: via a gateway, onlink through `link`."""
        body = _route_message(
            dst, via, link, protocol, flags=RTNH_F_ONLINK if link is not None else 0
        )
        self.nl.request(
            RTM_NEWROUTE,
            wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
            body,
            f"route {dst} via {via}" + (f" dev {link.name}" if link else ""),
        )

    def delete_route(self, route: Route, protocol: int) -> bool:
        """Delete a route of `protocol` (never another's); False when it was already gone."""
        body = _route_message(route.dst, route.gateway, None, protocol, scope=RT_SCOPE_NOWHERE)
        return self._tolerate_absent(RTM_DELROUTE, body, f"delete route {route.dst}")

    # neighbours and forwarding entries

    def neighbours(self, link: Link, family: int) -> list[Neighbour]:
        """The neighbour entries of one family on a link."""
        body = (
            NDMSG.pack(FAMILIES[family], 0, link.index, 0, 0, 0)
            + u32(NDA_IFINDEX, link.index).encode()
        )
        found = []
        for _, reply in self.nl.dump(RTM_GETNEIGH, body, f"list neighbours on {link.name}"):
            entry = _neighbour(reply)
            if entry.index == link.index:
                found.append(entry)
        return found

    def replace_neighbour(self, link: Link, address: str, lladdr: str) -> None:
        """A permanent entry: `address` is at `lladdr` on the link."""
        ip = ipaddress.ip_address(address)
        body = NDMSG.pack(FAMILIES[ip.version], 0, link.index, NUD_PERMANENT, 0, 0)
        attrs = [Attr(NDA_DST, ip.packed), Attr(NDA_LLADDR, mac_bytes(lladdr))]
        self.nl.request(
            RTM_NEWNEIGH,
            wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
            body + b"".join(a.encode() for a in attrs),
            f"neighbour {address} lladdr {lladdr} dev {link.name}",
        )

    def delete_neighbour(self, link: Link, address: str) -> bool:
        """Delete the neighbour entry of `address` on a link; False when there was none."""
        ip = ipaddress.ip_address(address)
        body = (
            NDMSG.pack(FAMILIES[ip.version], 0, link.index, 0, 0, 0)
            + Attr(NDA_DST, ip.packed).encode()
        )
        return self._tolerate_absent(RTM_DELNEIGH, body, f"forget neighbour {address}")

    def fdb(self, link: Link) -> list[FdbEntry]:
        """The forwarding entries of a VXLAN device.

        The request is an ifinfomsg naming the device: the kernel's (legacy)
        FDB dump then lists that device only.
        """
        body = IFINFO.pack(_socket.AF_BRIDGE, 0, link.index, 0, 0)
        found = []
        for _, reply in self.nl.dump(RTM_GETNEIGH, body, f"list FDB of {link.name}"):
            entry = _fdb_entry(reply)
            if entry is not None and entry.index == link.index:
                found.append(entry)
        return found

    def replace_fdb(self, link: Link, lladdr: str, dst: str) -> None:
        """A permanent forwarding entry: frames for `lladdr` go to underlay address `dst`."""
        body = NDMSG.pack(_socket.AF_BRIDGE, 0, link.index, NUD_PERMANENT, NTF_SELF, 0)
        attrs = [
            Attr(NDA_LLADDR, mac_bytes(lladdr)),
            Attr(NDA_DST, ipaddress.ip_address(dst).packed),
        ]
        self.nl.request(
            RTM_NEWNEIGH,
            wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
            body + b"".join(a.encode() for a in attrs),
            f"fdb {lladdr} dst {dst} dev {link.name}",
        )

    def delete_fdb(self, link: Link, lladdr: str) -> bool:
        """Delete every forwarding entry of `lladdr`; False when there was none."""
        body = (
            NDMSG.pack(_socket.AF_BRIDGE, 0, link.index, 0, NTF_SELF, 0)
            + Attr(NDA_LLADDR, mac_bytes(lladdr)).encode()
        )
        return self._tolerate_absent(RTM_DELNEIGH, body, f"delete fdb {lladdr} dev {link.name}")

    def _tolerate_absent(self, kind: int, body: bytes, what: str) -> bool:
        """Send a removal; False when there was nothing to remove."""
        send = self._change_links if kind == RTM_DELLINK else self.nl.request
        try:
            send(kind, 0, body, what)
        except NetlinkError as error:
            if error.errno in GONE:
                return False
            raise
        return True

    def _tolerate_exists(self, kind: int, body: bytes, what: str) -> None:
        try:
            self.nl.request(kind, wire.NLM_F_CREATE | wire.NLM_F_EXCL, body, what)
        except NetlinkError as error:
            if error.errno != errno.EEXIST:
                raise


def _route_message(
    dst: str,
    gateway: str | None,
    link: Link | None,
    protocol: int,
    *,
    scope: int = RT_SCOPE_UNIVERSE,
    flags: int = 0,
) -> bytes:
    """A route of the main table to `dst`, through its gateway and output link when given."""
    network = ipaddress.ip_network(dst)
    attrs = [u32(RTA_TABLE, RT_TABLE_MAIN)]
    if link is not None:
        attrs.append(u32(RTA_OIF, link.index))
    if network.prefixlen:
        attrs.append(Attr(RTA_DST, network.network_address.packed))
    if gateway:
        attrs.append(Attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed))
    return RTMSG.pack(
        FAMILIES[network.version],
        network.prefixlen,
        0,
        0,
        RT_TABLE_MAIN,
        protocol,
        scope,
        RTN_UNICAST,
        flags,
    ) + b"".join(a.encode() for a in attrs)


_NO_STATS = u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS).encode()


def _link(body: bytes) -> Link:
    _family, _type, index, flags, _change = IFINFO.unpack_from(body)
    attrs = parse_attrs(body, IFINFO.size)
    info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
    slave = parse_attrs(info.get(IFLA_INFO_SLAVE_DATA, b""))
    hairpin = slave.get(IFLA_BRPORT_MODE)
    mac = attrs.get(IFLA_ADDRESS, b"")
    return Link(
        index=index,
        name=get_string(attrs, IFLA_IFNAME) or "",
        kind=get_string(info, IFLA_INFO_KIND),
        flags=flags,
        mtu=get_u32(attrs, IFLA_MTU),
        mac=mac_text(mac),
        master=get_u32(attrs, IFLA_MASTER),
        peer=get_u32(attrs, IFLA_LINK),
        netnsid=get_s32(attrs, IFLA_LINK_NETNSID),
        hairpin=bool(hairpin[0]) if hairpin else None,
        alias=get_string(attrs, IFLA_IFALIAS),
        info_data=info.get(IFLA_INFO_DATA, b""),
        group=get_u32(attrs, IFLA_GROUP),
    )


def _address(body: bytes) -> Address | None:
    _family, prefix, _flags, _scope, index = IFADDR.unpack_from(body)
    attrs = parse_attrs(body, IFADDR.size)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None:
        return None
    return Address(index, f"{ipaddress.ip_address(raw)}/{prefix}")


def _route(body: bytes, family: int) -> Route | None:
    _fam, dst_len, _src, _tos, table, protocol, _scope, kind, flags = RTMSG.unpack_from(body)
    attrs = parse_attrs(body, RTMSG.size)
    table = get_u32(attrs, RTA_TABLE, table)
    if table != RT_TABLE_MAIN or kind != RTN_UNICAST:
        return None
    zero = "0.0.0.0" if family == 4 else "::"
    dst = str(ipaddress.ip_address(attrs[RTA_DST])) if RTA_DST in attrs else zero
    gateway = attrs.get(RTA_GATEWAY)
    return Route(
        f"{dst}/{dst_len}",
        str(ipaddress.ip_address(gateway)) if gateway else None,
        get_u32(attrs, RTA_OIF),
        protocol,
        flags,
    )


def _neighbour(body: bytes) -> Neighbour:
    _family, _pad, index, state, _flags, _type = NDMSG.unpack_from(body)
    attrs = parse_attrs(body, NDMSG.size)
    lladdr = attrs.get(NDA_LLADDR)
    return Neighbour(
        index,
        str(ipaddress.ip_address(attrs[NDA_DST])),
        mac_text(lladdr) if lladdr else None,
        state,
    )


def _fdb_entry(body: bytes) -> FdbEntry | None:
    _family, _pad, index, state, _flags, _type = NDMSG.unpack_from(body)
    attrs = parse_attrs(body, NDMSG.size)
    lladdr = attrs.get(NDA_LLADDR)
    if lladdr is None:
        return None
    dst = attrs.get(NDA_DST)
    return FdbEntry(index, mac_text(lladdr), str(ipaddress.ip_address(dst)) if dst else None, state)
