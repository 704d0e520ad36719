"""A VXLAN device's settings: encoded for its creation, read back from a link.

`Rtnl.create(name, "vxlan", mtu, vxlan_data(settings), ...)` makes one;
`vxlan_settings(link)` decodes the IFLA_INFO_DATA the kernel reports, so a
handler can tell netc's device as planned from one whose tunnel differs, and
from another plugin's device that holds the same VNI and port.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

from compiler.datatypes import frozen
from runtime.netlink.wire import Attr, get_u32, parse_attrs, u8, u32

if TYPE_CHECKING:  # rtnl creates devices with this module's data
    from runtime.netlink.rtnl import Link

IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 2, 4, 7
IFLA_VXLAN_PORT, IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 15, 16, 17
IFLA_VXLAN_GBP, IFLA_VXLAN_COLLECT_METADATA, IFLA_VXLAN_GPE = 23, 25, 27
RECEIVE_MODES = {
    IFLA_VXLAN_COLLECT_METADATA: "external",
    IFLA_VXLAN_GBP: "gbp",
    IFLA_VXLAN_GPE: "gpe",
}
"""Ways of receiving other than plain VXLAN: devices sharing a UDP port must agree on them.
(External is a u8 the kernel always reports; GBP and GPE are flags, present when set.)"""


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
    return Vxlan(
        vni=get_u32(data, IFLA_VXLAN_ID),
        port=struct.unpack(">H", port[:2])[0] if port else 0,
        local=str(ipaddress.ip_address(raw)) if raw else None,
        learning=bool(learning[0]) if learning else False,
        group=str(ipaddress.ip_address(group)) if group else None,
        receive=tuple(
            mode for kind, mode in RECEIVE_MODES.items() if kind in data and data[kind][:1] != b"\0"
        ),
    )
