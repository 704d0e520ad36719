r"""Traffic control over rtnetlink: TBF and ingress qdiscs, a u32 redirect filter.

The shapes netc installs, in `tc` terms:

    tc qdisc replace dev VETH root handle 1: tbf rate R burst B limit L
    tc qdisc add dev VETH handle ffff: ingress
    tc filter add dev VETH parent ffff: protocol all prio 1 u32 match u32 0 0 \\
        flowid 1:1 action mirred egress redirect dev IFB

Rates and sizes are bytes here; the planner converted CNI's bits.  The TBF
bucket is given in bytes (TCA_TBF_BURST) rather than as a time in ticks, so
no rate table and no /proc/net/psched reading are needed.
"""

from __future__ import annotations

import _socket
import errno
import struct
from collections.abc import Sequence

from compiler.datatypes import frozen
from runtime.netlink import wire
from runtime.netlink.channel import NetlinkError
from runtime.netlink.rtnl import Link, Rtnl
from runtime.netlink.wire import Attr, attributes, get_string, parse_attrs, string, u32, u64

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46

TCMSG = struct.Struct("=BxHiIII")
RATESPEC = struct.Struct("=BBHhHI")
U32_SEL = struct.Struct("=BBBxHHhhI")
U32_KEY = struct.Struct("=IIii")
MIRRED = struct.Struct("=IIiiiiI")

TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000
TBF_HANDLE = 0x00010000
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_BURST = 1, 4, 6
TC_LINKLAYER_ETHERNET = 1
TCA_U32_CLASSID, TCA_U32_SEL, TCA_U32_ACT = 1, 5, 7
TC_U32_TERMINAL = 1
TCA_ACT_KIND, TCA_ACT_OPTIONS = 1, 2
TCA_MIRRED_PARMS = 2
TC_ACT_STOLEN = 4
TCA_EGRESS_REDIR = 1
ETH_P_ALL = 0x0003
PSCHED_NS_PER_TICK = 64


@frozen
class Tbf:
    """A root TBF as the kernel reports it: bytes/s, bucket bytes, queue bytes."""

    rate: int
    burst: int
    limit: int


def replace_tbf(rtnl: Rtnl, link: Link, rate: int, burst: int, limit: int) -> None:
    """Install or update the root TBF of a link (idempotent)."""
    rate32 = min(rate, 0xFFFFFFFF)
    buffer_ticks = min(burst * 10**9 // rate // PSCHED_NS_PER_TICK, 0xFFFFFFFF)
    ratespec = RATESPEC.pack(0, TC_LINKLAYER_ETHERNET, 0, 0, 0, rate32)
    peak = RATESPEC.pack(0, 0, 0, 0, 0, 0)
    qopt = ratespec + peak + struct.pack("=III", limit, buffer_ticks, 0)
    options = [Attr(TCA_TBF_PARMS, qopt), u32(TCA_TBF_BURST, burst)]
    if rate > 0xFFFFFFFF:
        options.append(u64(TCA_TBF_RATE64, rate))
    attrs = [string(TCA_KIND, "tbf"), Attr(TCA_OPTIONS, options)]
    _qdisc(
        rtnl,
        link,
        TBF_HANDLE,
        TC_H_ROOT,
        attrs,
        flags=wire.NLM_F_CREATE | wire.NLM_F_REPLACE,
        what=f"tbf on {link.name}",
    )


def ensure_ingress(rtnl: Rtnl, link: Link) -> bool:
    """Add the ingress qdisc of a link unless it has one; True when it was added."""
    try:
        _qdisc(
            rtnl,
            link,
            INGRESS_HANDLE,
            TC_H_INGRESS,
            [string(TCA_KIND, "ingress")],
            flags=wire.NLM_F_CREATE | wire.NLM_F_EXCL,
            what=f"ingress qdisc on {link.name}",
        )
    except NetlinkError as error:
        if error.errno != errno.EEXIST:
            raise
        return False
    return True


def delete_ingress(rtnl: Rtnl, link: Link) -> None:
    """Remove the ingress qdisc of a link, and with it every filter it holds (if any)."""
    body = TCMSG.pack(0, 0, link.index, INGRESS_HANDLE, TC_H_INGRESS, 0)
    try:
        rtnl.nl.request(RTM_DELQDISC, 0, body, f"delete ingress qdisc of {link.name}")
    except NetlinkError as error:
        if error.errno not in (errno.ENOENT, errno.EINVAL):
            raise


def _qdisc(
    rtnl: Rtnl,
    link: Link,
    handle: int,
    parent: int,
    attrs: Sequence[Attr],
    *,
    flags: int,
    what: str,
) -> None:
    body = TCMSG.pack(0, 0, link.index, handle, parent, 0) + b"".join(a.encode() for a in attrs)
    rtnl.nl.request(RTM_NEWQDISC, flags, body, what)


def qdiscs(rtnl: Rtnl, link: Link) -> dict[int, tuple[str, bytes]]:
    """The qdiscs of a link by parent handle: (kind, raw options)."""
    body = TCMSG.pack(0, 0, link.index, 0, 0, 0)
    found = {}
    for _, reply in rtnl.nl.dump(RTM_GETQDISC, body, f"list qdiscs of {link.name}"):
        _family, _pad, index, _handle, parent, _info = TCMSG.unpack_from(reply)
        if index != link.index:
            continue
        attrs = parse_attrs(reply, TCMSG.size)
        found[parent] = (get_string(attrs, TCA_KIND) or "", attrs.get(TCA_OPTIONS, b""))
    return found


def root_tbf(rtnl: Rtnl, link: Link) -> Tbf | None:
    """The link's root TBF, or None when its root qdisc is something else."""
    kind, options = qdiscs(rtnl, link).get(TC_H_ROOT, ("", b""))
    if kind != "tbf":
        return None
    attrs = parse_attrs(options)
    parms = attrs[TCA_TBF_PARMS]
    rate = RATESPEC.unpack_from(parms)[5]
    if TCA_TBF_RATE64 in attrs:
        rate = struct.unpack("=Q", attrs[TCA_TBF_RATE64])[0]
    limit, buffer_ticks, _mtu = struct.unpack_from("=III", parms, RATESPEC.size * 2)
    burst = round(buffer_ticks * PSCHED_NS_PER_TICK * rate / 10**9)
    return Tbf(rate, burst, limit)


def add_redirect(rtnl: Rtnl, link: Link, target: Link) -> None:
    """Redirect everything arriving on `link` to `target`'s egress (match-all u32)."""
    selector = U32_SEL.pack(TC_U32_TERMINAL, 0, 1, 0, 0, 0, 0, 0) + U32_KEY.pack(0, 0, 0, 0)
    mirred = MIRRED.pack(0, 0, TC_ACT_STOLEN, 0, 0, TCA_EGRESS_REDIR, target.index)
    action = [
        string(TCA_ACT_KIND, "mirred"),
        Attr(TCA_ACT_OPTIONS, [Attr(TCA_MIRRED_PARMS, mirred)]),
    ]
    options = [
        u32(TCA_U32_CLASSID, 0x10001),
        Attr(TCA_U32_SEL, selector),
        Attr(TCA_U32_ACT, [Attr(1, action)]),
    ]
    info = (1 << 16) | _socket.htons(ETH_P_ALL)  # priority 1, protocol all (network order)
    body = TCMSG.pack(0, 0, link.index, 0, INGRESS_HANDLE, info) + b"".join(
        a.encode() for a in [string(TCA_KIND, "u32"), Attr(TCA_OPTIONS, options)]
    )
    rtnl.nl.request(
        RTM_NEWTFILTER,
        wire.NLM_F_CREATE | wire.NLM_F_EXCL,
        body,
        f"redirect {link.name} to {target.name}",
    )


def redirect_targets(rtnl: Rtnl, link: Link) -> list[int]:
    """Interface indexes the ingress filters of `link` redirect to (0: a device now gone)."""
    body = TCMSG.pack(0, 0, link.index, 0, INGRESS_HANDLE, 0)
    try:
        replies = rtnl.nl.dump(RTM_GETTFILTER, body, f"list filters of {link.name}")
    except NetlinkError as error:
        if error.errno in (errno.EINVAL, errno.ENOENT):
            return []
        raise
    targets = []
    for _, reply in replies:
        attrs = parse_attrs(reply, TCMSG.size)
        if get_string(attrs, TCA_KIND) != "u32":
            continue
        actions = parse_attrs(attrs.get(TCA_OPTIONS, b"")).get(TCA_U32_ACT, b"")
        targets += [
            index for _, action in attributes(actions) if (index := _mirred(action)) is not None
        ]
    return targets


def _mirred(action: bytes) -> int | None:
    attrs = parse_attrs(action)
    if get_string(attrs, TCA_ACT_KIND) != "mirred":
        return None
    parms = parse_attrs(attrs.get(TCA_ACT_OPTIONS, b"")).get(TCA_MIRRED_PARMS)
    return MIRRED.unpack_from(parms)[6] if parms else None
