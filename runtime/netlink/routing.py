"""rtnetlink requests for routing between nodes: VXLAN devices, owned routes, static entries.

What `netc apply --node` needs beyond a pod's links and addresses:

    VXLAN     create a device (VNI, UDP port, local underlay address, no
              learning, a MAC, an MTU and the owner's alias) and read its
              settings back
    routes    add or replace a route carrying a route protocol number of our
              own (through a gateway, or onlink through a device), list them,
              delete one -- the delete names the protocol too, so the kernel
              itself refuses to remove anybody else's route
    neighbours  permanent entries (an address's MAC) on a device
    FDB       a VXLAN device's forwarding entries: a MAC behind an underlay
              address (AF_BRIDGE neighbour messages with NTF_SELF)

Every change is a replace (NLM_F_CREATE | NLM_F_REPLACE), so repeating one
is harmless; removals tolerate absence.
"""

from __future__ import annotations

import _socket
import errno
import ipaddress
import struct
from collections.abc import Sequence

from compiler.datatypes import frozen
from compiler.ir import mac_bytes, mac_text
from runtime.netlink import wire
from runtime.netlink.channel import NetlinkError
from runtime.netlink.rtnl import (
    ABSENT,
    FAMILIES,
    IFINFO,
    IFLA_ADDRESS,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MTU,
    NDA_DST,
    NDMSG,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_TABLE,
    RTM_DELNEIGH,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTMSG,
    RTN_UNICAST,
    Link,
    Route,
    Rtnl,
)
from runtime.netlink.wire import Attr, get_u32, parse_attrs, string, u8, u32

RTM_DELROUTE = 25
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30

IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 2, 4, 7
IFLA_VXLAN_PORT, IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 15, 16, 17
IFLA_VXLAN_GBP, IFLA_VXLAN_COLLECT_METADATA, IFLA_VXLAN_GPE = 23, 25, 27
RECEIVE_MODES = {IFLA_VXLAN_COLLECT_METADATA: "external", IFLA_VXLAN_GBP: "gbp",
                 IFLA_VXLAN_GPE: "gpe"}
"""Ways of receiving other than plain VXLAN: devices sharing a UDP port must agree on them.
(External is a u8 the kernel always reports; GBP and GPE are flags, present when set.)"""

NDA_LLADDR, NDA_IFINDEX = 2, 8
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 0x04
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255

GONE = (*ABSENT, errno.ESRCH)
"""What the kernel answers when the object to remove is not there (routes say ESRCH)."""


@frozen
class Vxlan:
    """A VXLAN device as planned, or as read back (`learning` is only known then)."""

    vni: int
    port: int
    local: str | None
    learning: bool = False
    group: str | None = None
    """The multicast group or remote, read back (netc's devices have none)."""
    receive: tuple[str, ...] = ()
    """The receive modes of `RECEIVE_MODES` set, read back (netc's devices have none)."""

    @property
    def family(self) -> int:
        """The underlay's family: the kernel tells IPv4 and IPv6 devices apart by it."""
        return 6 if ":" in (self.local or self.group or "") else 4


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


def vxlan_data(settings: Vxlan) -> list[Attr]:
    """The IFLA_INFO_DATA of a VXLAN device: VNI, local address, port (big-endian), learning."""
    attrs = [u32(IFLA_VXLAN_ID, settings.vni)]
    if settings.local is not None:
        local = ipaddress.ip_address(settings.local)
        kind = IFLA_VXLAN_LOCAL if local.version == 4 else IFLA_VXLAN_LOCAL6
        attrs.append(Attr(kind, local.packed))
    attrs.append(Attr(IFLA_VXLAN_PORT, struct.pack(">H", settings.port)))
    attrs.append(u8(IFLA_VXLAN_LEARNING, int(settings.learning)))
    return attrs


def vxlan_settings(link: Link) -> Vxlan | None:
    """A VXLAN link's settings from its IFLA_INFO_DATA; None for any other kind of link."""
    if link.kind != "vxlan":
        return None
    data = parse_attrs(link.info_data)
    raw = data.get(IFLA_VXLAN_LOCAL) or data.get(IFLA_VXLAN_LOCAL6)
    group = data.get(IFLA_VXLAN_GROUP) or data.get(IFLA_VXLAN_GROUP6)
    port = data.get(IFLA_VXLAN_PORT)
    learning = data.get(IFLA_VXLAN_LEARNING)
    return Vxlan(vni=get_u32(data, IFLA_VXLAN_ID),
                 port=struct.unpack(">H", port[:2])[0] if port else 0,
                 local=str(ipaddress.ip_address(raw)) if raw else None,
                 learning=bool(learning[0]) if learning else False,
                 group=str(ipaddress.ip_address(group)) if group else None,
                 receive=tuple(mode for kind, mode in RECEIVE_MODES.items()
                               if kind in data and data[kind][:1] != b"\0"))


class Routing:
    """The requests above, on the rtnetlink socket of one namespace."""

    def __init__(self, rtnl: Rtnl) -> None:
        self.rtnl = rtnl
        self.nl = rtnl.nl

    # VXLAN devices

    def create_vxlan(self, name: str, settings: Vxlan, mtu: int, mac: str, alias: str) -> None:
        """A new VXLAN device (not up); fails with EEXIST if the name is taken."""
        info = [string(IFLA_INFO_KIND, "vxlan"), Attr(IFLA_INFO_DATA, vxlan_data(settings))]
        attrs = [string(IFLA_IFNAME, name), Attr(IFLA_LINKINFO, info), u32(IFLA_MTU, mtu),
                 Attr(IFLA_ADDRESS, mac_bytes(mac))]
        self._setlink(0, attrs, wire.NLM_F_CREATE | wire.NLM_F_EXCL, f"create vxlan {name}")
        # The alias is set afterwards: on creation the kernel ignores IFLA_IFALIAS.
        created = self.rtnl.link(name)
        if created is None:
            raise NetlinkError(errno.ENODEV, f"find the new vxlan {name}")
        self.set_alias(created, alias)

    def set_alias(self, link: Link, alias: str) -> None:
        """The link's alias (IFLA_IFALIAS): how netc recognises the links it made."""
        self._setlink(link.index, [string(IFLA_IFALIAS, alias)], 0, f"set alias of {link.name}")

    def set_mac(self, link: Link, mac: str) -> None:
        """Change a link's MAC address."""
        self._setlink(link.index, [Attr(IFLA_ADDRESS, mac_bytes(mac))], 0,
                      f"set MAC of {link.name}")

    def _setlink(self, index: int, attrs: Sequence[Attr], flags: int, what: str) -> None:
        body = IFINFO.pack(0, 0, index, 0, 0) + b"".join(a.encode() for a in attrs)
        self.nl.request(RTM_NEWLINK, flags, body, what)

    # routes

    def routes(self, family: int, protocol: int | None = None) -> list[Route]:
        """The main table's unicast routes of a family, only those of `protocol` if given."""
        return [r for r in self.rtnl.routes(family) if protocol in (None, r.protocol)]

    def replace_route(self, dst: str, via: str, link: Link | None, protocol: int) -> None:
        """Add or replace the route to `dst`: via a gateway, onlink through `link` if given."""
        network = ipaddress.ip_network(dst)
        attrs = [u32(RTA_TABLE, RT_TABLE_MAIN), Attr(RTA_DST, network.network_address.packed),
                 Attr(RTA_GATEWAY, ipaddress.ip_address(via).packed)]
        if link is not None:
            attrs.append(u32(RTA_OIF, link.index))
        body = RTMSG.pack(FAMILIES[network.version], network.prefixlen, 0, 0, RT_TABLE_MAIN,
                          protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST,
                          RTNH_F_ONLINK if link is not None else 0)
        self.nl.request(RTM_NEWROUTE, wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
                        body + b"".join(a.encode() for a in attrs),
                        f"route {dst} via {via}" + (f" dev {link.name}" if link else ""))

    def delete_route(self, route: Route, protocol: int) -> bool:
        """Delete a route of `protocol` (never another's); False when it was already gone."""
        network = ipaddress.ip_network(route.dst)
        attrs = [u32(RTA_TABLE, RT_TABLE_MAIN)]
        if network.prefixlen:
            attrs.append(Attr(RTA_DST, network.network_address.packed))
        if route.gateway:
            attrs.append(Attr(RTA_GATEWAY, ipaddress.ip_address(route.gateway).packed))
        body = RTMSG.pack(FAMILIES[network.version], network.prefixlen, 0, 0, RT_TABLE_MAIN,
                          protocol, RT_SCOPE_NOWHERE, RTN_UNICAST, 0)
        return self._remove(RTM_DELROUTE, body + b"".join(a.encode() for a in attrs),
                            f"delete route {route.dst}")

    # neighbours and forwarding entries

    def neighbours(self, link: Link, family: int) -> list[Neighbour]:
        """The neighbour entries of one family on a link."""
        body = NDMSG.pack(FAMILIES[family], 0, link.index, 0, 0, 0) + u32(
            NDA_IFINDEX, link.index).encode()
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
        self.nl.request(RTM_NEWNEIGH, wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
                        body + b"".join(a.encode() for a in attrs),
                        f"neighbour {address} lladdr {lladdr} dev {link.name}")

    def delete_neighbour(self, link: Link, address: str) -> bool:
        """Delete the entry of `address` on the link; False when there was none."""
        return self.rtnl.forget_neighbour(link, address)

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
        attrs = [Attr(NDA_LLADDR, mac_bytes(lladdr)),
                 Attr(NDA_DST, ipaddress.ip_address(dst).packed)]
        self.nl.request(RTM_NEWNEIGH, wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
                        body + b"".join(a.encode() for a in attrs),
                        f"fdb {lladdr} dst {dst} dev {link.name}")

    def delete_fdb(self, link: Link, lladdr: str) -> bool:
        """Delete every forwarding entry of `lladdr`; False when there was none."""
        body = NDMSG.pack(_socket.AF_BRIDGE, 0, link.index, 0, NTF_SELF, 0) + Attr(
            NDA_LLADDR, mac_bytes(lladdr)).encode()
        return self._remove(RTM_DELNEIGH, body, f"delete fdb {lladdr} dev {link.name}")

    def _remove(self, kind: int, body: bytes, what: str) -> bool:
        try:
            self.nl.request(kind, 0, body, what)
        except NetlinkError as error:
            if error.errno in GONE:
                return False
            raise
        return True


def _neighbour(body: bytes) -> Neighbour:
    _family, _pad, index, state, _flags, _type = NDMSG.unpack_from(body)
    attrs = parse_attrs(body, NDMSG.size)
    lladdr = attrs.get(NDA_LLADDR)
    return Neighbour(index, str(ipaddress.ip_address(attrs[NDA_DST])),
                     mac_text(lladdr) if lladdr else None, state)


def _fdb_entry(body: bytes) -> FdbEntry | None:
    _family, _pad, index, state, _flags, _type = NDMSG.unpack_from(body)
    attrs = parse_attrs(body, NDMSG.size)
    lladdr = attrs.get(NDA_LLADDR)
    if lladdr is None:
        return None
    dst = attrs.get(NDA_DST)
    return FdbEntry(index, mac_text(lladdr), str(ipaddress.ip_address(dst)) if dst else None,
                    state)
