"""Every message netc sends, byte for byte against pyroute2's encoding of the same message.

netc's codec sends through a `Capture` (no kernel, no root); pyroute2 -- the
oracle, a test dependency only -- encodes the same message from its own
message classes (ifinfmsg, ifaddrmsg, rtmsg, ndmsg, tcmsg, nsidmsg) with the
attributes in the order netc sends them, and its own knowledge where it has
some: tc's tick arithmetic (calc_xmittime), the u32 selector of a match-all
key, the mirred action's parameters, tcm_info of a filter, the ingress
handle.  Where pyroute2 cannot say the same thing as netc, the test says so:

- NLA_F_NESTED: netc marks every nest, as iproute2 does; pyroute2 marks a
  nest when its class says so (`nla_flags`, as in its mirred options) and
  its rtnetlink classes do not, so `nests_marked` sets that class attribute
  on the nests netc sends, for one test at a time.
- TBF: pyroute2's tbf options know neither TCA_TBF_RATE64 nor TCA_TBF_BURST,
  and its parms encoder rewrites cell_log/cell_align from a rate table netc
  does not send; `TbfOptions` is its tbf options map completed from
  linux/pkt_sched.h, over its own tc_tbf_qopt field layout.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable

import pytest
from pyroute2.netlink import (
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    nla,
)
from pyroute2.netlink import rtnl as pr
from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES, nfgen_msg
from pyroute2.netlink.nfnetlink import nftsocket as nft
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD, ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_PROMISC, IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.nsidmsg import nsidmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import (
    cls_u32,
    common_act,
    plugins,
    sched_ingress,
    sched_tbf,
    tcmsg,
)
from pyroute2.netlink.rtnl.tcmsg.common import LINKLAYER_ETHERNET, calc_xmittime
from pyroute2.protocols import ETH_P_ALL

from runtime.netlink import tc
from runtime.netlink.channel import NETLINK_GET_STRICT_CHK, SOL_NETLINK, Channel, NetlinkError
from runtime.netlink.nftables import Tables
from runtime.netlink.rtnl import (
    NTF_SELF,
    NUD_PERMANENT,
    RTEXT_FILTER_SKIP_STATS,
    RTNH_F_ONLINK,
    Link,
    Route,
    Rtnl,
)
from tests.netlink.conversation import Capture

CHANGE = NLM_F_REQUEST | NLM_F_ACK
CREATE = CHANGE | NLM_F_CREATE | NLM_F_EXCL
DUMP = NLM_F_REQUEST | NLM_F_DUMP
RT_TABLE_MAIN = 254
HOST = Link(7, "h0", "veth", 0, 1500, "02:00:00:00:00:07", 0, 21, 3, None)
BRIDGE = Link(3, "br0", "bridge", 0, 1500, "02:00:00:00:00:03", 0, 0, None, None)
IFB = Link(9, "ifb0", "ifb", 0, 1500, "02:00:00:00:00:09", 0, 0, None, None)
VXLAN = Link(11, "netc.1", "vxlan", 0, 1450, "02:00:00:00:00:0b", 0, 0, None, None)
AF_BRIDGE = 7
NS_FD = 42


class TbfOptions(nla):
    """pyroute2's tbf options with the attributes it lacks, numbered as in pkt_sched.h."""

    nla_flags = NLA_F_NESTED
    nla_map = (
        ("TCA_TBF_UNSPEC", "none"),
        ("TCA_TBF_PARMS", "tbf_parms"),
        ("TCA_TBF_RTAB", "hex"),
        ("TCA_TBF_PTAB", "hex"),
        ("TCA_TBF_RATE64", "uint64"),
        ("TCA_TBF_PRATE64", "uint64"),
        ("TCA_TBF_BURST", "uint32"),
        ("TCA_TBF_PBURST", "uint32"),
    )

    class tbf_parms(nla):  # noqa: N801 -- pyroute2 finds nested classes by these names
        fields = sched_tbf.options.tbf_parms.fields


@pytest.fixture(autouse=True)
def nests_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyroute2 marks the nests netc sends NLA_F_NESTED (restored after each test)."""
    for nest in (
        ifinfmsg.ifinfo,
        ifinfmsg.ifinfo.veth_data,
        ifinfmsg.ifinfo.bridge_slave_data,
        cls_u32.options,
        common_act.tca_act_prio,
        common_act.tca_act_prio.tca_act,
    ):
        monkeypatch.setattr(nest, "nla_flags", NLA_F_NESTED)
    monkeypatch.setitem(plugins, "tbf", types.SimpleNamespace(options=TbfOptions))


def netc_sends(call: Callable[[Rtnl], object]) -> list[bytes]:
    """The messages netc sends for one call (answered: nothing found, changes acknowledged)."""
    capture = Capture()
    with contextlib.suppress(NetlinkError):
        call(Rtnl(Channel(capture)))
    return capture.sent


def pyroute2_encodes(
    message_class: type,
    kind: int,
    header_flags: int,
    attrs: list | None = None,
    /,
    *,
    seq: int = 1,
    **fields: int,
) -> bytes:
    """The message as pyroute2 encodes it, by default with sequence number 1 (a new channel's
    first)."""
    message = message_class()
    message["header"]["type"] = kind
    message["header"]["flags"] = header_flags
    message["header"]["sequence_number"] = seq
    for name, value in fields.items():
        message[name] = value
    message["attrs"] = attrs or []
    message.encode()
    return bytes(message.data)


def words(data: bytes) -> list[str]:
    """The bytes as 4-byte words in hex, so that a difference shows where it is."""
    return [data[i : i + 4].hex() for i in range(0, len(data), 4)]


def assert_one_message(call: Callable[[Rtnl], object], expected: bytes) -> None:
    sent = netc_sends(call)
    assert len(sent) == 1
    assert words(sent[0]) == words(expected)


def ifinfo(kind: str, data: list | None = None) -> tuple:
    attrs: list = [("IFLA_INFO_KIND", kind)]
    if data:
        attrs.append(("IFLA_INFO_DATA", {"attrs": data}))
    return ("IFLA_LINKINFO", {"attrs": attrs})


# links


def test_looking_a_link_up_by_name_without_its_counters():
    assert_one_message(
        lambda r: r.link("h0"),
        pyroute2_encodes(
            ifinfmsg,
            pr.RTM_GETLINK,
            NLM_F_REQUEST,
            [("IFLA_IFNAME", "h0"), ("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)],
        ),
    )


def test_creating_a_bridge_with_an_mtu_and_its_own_mac():
    assert_one_message(
        lambda r: r.create("cni0", "bridge", 1400, mac="02:11:22:33:44:55"),
        pyroute2_encodes(
            ifinfmsg,
            pr.RTM_NEWLINK,
            CREATE,
            [
                ("IFLA_IFNAME", "cni0"),
                ifinfo("bridge"),
                ("IFLA_MTU", 1400),
                ("IFLA_ADDRESS", "02:11:22:33:44:55"),
            ],
        ),
    )


def test_creating_an_ifb():
    assert_one_message(
        lambda r: r.create("ifb0", "ifb"),
        pyroute2_encodes(
            ifinfmsg, pr.RTM_NEWLINK, CREATE, [("IFLA_IFNAME", "ifb0"), ifinfo("ifb")]
        ),
    )


@pytest.mark.parametrize("mtu", [1450, None])
def test_creating_a_veth_pair_with_its_peer_in_the_namespace_of_an_fd(mtu):
    peer = [("IFLA_IFNAME", "eth0"), ("IFLA_NET_NS_FD", NS_FD)]
    own = [("IFLA_IFNAME", "h0")]
    if mtu:
        peer.append(("IFLA_MTU", mtu))
    link = [*own, ifinfo("veth", [("VETH_INFO_PEER", {"attrs": peer})])]
    if mtu:
        link.append(("IFLA_MTU", mtu))
    assert_one_message(
        lambda r: r.create_veth("h0", "eth0", NS_FD, mtu),
        pyroute2_encodes(ifinfmsg, pr.RTM_NEWLINK, CREATE, link),
    )


def test_deleting_a_link():
    assert_one_message(
        lambda r: r.delete("h0"),
        pyroute2_encodes(ifinfmsg, pr.RTM_DELLINK, CHANGE, [("IFLA_IFNAME", "h0")]),
    )


@pytest.mark.parametrize(
    ("up", "promiscuous", "flags", "change"),
    [
        (True, None, IFF_UP, IFF_UP),
        (None, False, 0, IFF_PROMISC),
        (False, True, IFF_PROMISC, IFF_UP | IFF_PROMISC),
    ],
)
def test_setting_flags_changes_only_the_flags_named(up, promiscuous, flags, change):
    assert_one_message(
        lambda r: r.set_flags(HOST, up=up, promiscuous=promiscuous),
        pyroute2_encodes(
            ifinfmsg, pr.RTM_NEWLINK, CHANGE, index=HOST.index, flags=flags, change=change
        ),
    )


def test_setting_the_alias_and_the_mac():
    assert_one_message(
        lambda r: r.set_alias(HOST, "netc cluster prod"),
        pyroute2_encodes(
            ifinfmsg,
            pr.RTM_NEWLINK,
            CHANGE,
            [("IFLA_IFALIAS", "netc cluster prod")],
            index=HOST.index,
        ),
    )
    assert_one_message(
        lambda r: r.set_mac(HOST, "02:aa:bb:cc:dd:ee"),
        pyroute2_encodes(
            ifinfmsg,
            pr.RTM_NEWLINK,
            CHANGE,
            [("IFLA_ADDRESS", "02:aa:bb:cc:dd:ee")],
            index=HOST.index,
        ),
    )


def test_setting_the_mtu():
    assert_one_message(
        lambda r: r.set_mtu(HOST, 9000),
        pyroute2_encodes(ifinfmsg, pr.RTM_NEWLINK, CHANGE, [("IFLA_MTU", 9000)], index=HOST.index),
    )


def test_enslaving_to_a_bridge():
    assert_one_message(
        lambda r: r.set_master(HOST, BRIDGE),
        pyroute2_encodes(
            ifinfmsg, pr.RTM_NEWLINK, CHANGE, [("IFLA_MASTER", BRIDGE.index)], index=HOST.index
        ),
    )


@pytest.mark.parametrize("on", [True, False])
def test_setting_hairpin_mode_of_a_bridge_port(on):
    slave = {
        "attrs": [
            ("IFLA_INFO_SLAVE_KIND", "bridge"),
            ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", int(on))]}),
        ]
    }
    assert_one_message(
        lambda r: r.set_hairpin(HOST, on),
        pyroute2_encodes(
            ifinfmsg, pr.RTM_NEWLINK, CHANGE, [("IFLA_LINKINFO", slave)], index=HOST.index
        ),
    )


def test_asking_the_id_of_a_namespace_by_fd():
    assert_one_message(
        lambda r: r.nsid(NS_FD),
        pyroute2_encodes(nsidmsg, pr.RTM_GETNSID, NLM_F_REQUEST, [("NETNSA_FD", NS_FD)]),
    )


def test_pairing_asks_the_namespace_id_only_for_a_veth_whose_peer_index_matches():
    pod = Link(HOST.peer, "eth0", "veth", 0, 1500, "", 0, HOST.index, 3, None)
    assert len(netc_sends(lambda r: r.paired(HOST, pod, NS_FD))) == 1
    assert netc_sends(lambda r: r.paired(BRIDGE, pod, NS_FD)) == []


# addresses, routes, neighbours


@pytest.mark.parametrize(("family", "af"), [(None, 0), (4, 2), (6, 10)])
def test_listing_addresses(family, af):
    assert_one_message(
        lambda r: r.addresses(family), pyroute2_encodes(ifaddrmsg, pr.RTM_GETADDR, DUMP, family=af)
    )


def test_listing_one_link_s_addresses_asks_the_kernel_to_filter_strictly():
    capture = Capture()
    Rtnl(Channel(capture)).addresses(4, BRIDGE)
    expected = pyroute2_encodes(ifaddrmsg, pr.RTM_GETADDR, DUMP, family=2, index=BRIDGE.index)
    assert [words(sent) for sent in capture.sent] == [words(expected)]
    strict = (SOL_NETLINK, NETLINK_GET_STRICT_CHK)
    assert capture.options == [(*strict, 1), (*strict, 0)], "strict for that request only"


@pytest.mark.parametrize(
    ("cidr", "af", "flags", "broadcast"),
    [
        ("10.1.2.3/24", 2, 0, "10.1.2.255"),
        ("10.1.2.3/31", 2, 0, None),
        ("fd00:1::5/64", 10, IFA_F_NODAD, None),
    ],
)
def test_adding_an_address(cidr, af, flags, broadcast):
    ip, prefix = cidr.split("/")
    attrs = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
    if broadcast:
        attrs.append(("IFA_BROADCAST", broadcast))
    assert_one_message(
        lambda r: r.add_address(HOST, cidr),
        pyroute2_encodes(
            ifaddrmsg,
            pr.RTM_NEWADDR,
            CREATE,
            attrs,
            family=af,
            prefixlen=int(prefix),
            flags=flags,
            index=HOST.index,
        ),
    )


@pytest.mark.parametrize(("family", "af"), [(4, 2), (6, 10)])
def test_listing_routes(family, af):
    assert_one_message(
        lambda r: r.routes(family), pyroute2_encodes(rtmsg, pr.RTM_GETROUTE, DUMP, family=af)
    )


@pytest.mark.parametrize(
    ("dst", "gateway", "af"),
    [
        ("0.0.0.0/0", "10.1.2.1", 2),
        ("10.9.0.0/16", None, 2),
        ("::/0", "fd00:1::1", 10),
        ("fd00:2::/64", "fd00:1::1", 10),
    ],
)
def test_adding_a_route_to_the_main_table(dst, gateway, af):
    network, prefix = dst.split("/")
    attrs = [("RTA_TABLE", RT_TABLE_MAIN), ("RTA_OIF", HOST.index)]
    if int(prefix):
        attrs.append(("RTA_DST", network))
    if gateway:
        attrs.append(("RTA_GATEWAY", gateway))
    assert_one_message(
        lambda r: r.add_route(dst, gateway, HOST),
        pyroute2_encodes(
            rtmsg,
            pr.RTM_NEWROUTE,
            CREATE,
            attrs,
            family=af,
            dst_len=int(prefix),
            table=RT_TABLE_MAIN,
            proto=pr.rt_proto["boot"],
            type=pr.rt_type["unicast"],
        ),
    )


@pytest.mark.parametrize(
    ("dst", "via", "device", "af"),
    [
        ("10.244.2.0/24", "192.168.10.12", None, 2),
        ("10.244.3.0/24", "10.244.3.0", VXLAN, 2),
        ("fd00:10:244:3::/64", "fd00:10:244:3::", VXLAN, 10),
    ],
)
def test_replacing_a_route_of_netcs_protocol_through_a_gateway_or_onlink(dst, via, device, af):
    network, prefix = dst.split("/")
    attrs = [("RTA_TABLE", RT_TABLE_MAIN)]
    if device:
        attrs.append(("RTA_OIF", device.index))
    attrs += [("RTA_DST", network), ("RTA_GATEWAY", via)]
    assert_one_message(
        lambda r: r.replace_route(dst, via, device, 78),
        pyroute2_encodes(
            rtmsg,
            pr.RTM_NEWROUTE,
            CHANGE | NLM_F_CREATE | NLM_F_REPLACE,
            attrs,
            family=af,
            dst_len=int(prefix),
            table=RT_TABLE_MAIN,
            proto=78,
            type=pr.rt_type["unicast"],
            flags=RTNH_F_ONLINK if device else 0,
        ),
    )


def test_deleting_a_route_names_its_protocol():
    route = Route("10.244.2.0/24", "192.168.10.12", 3, 78)
    assert_one_message(
        lambda r: r.delete_route(route, 78),
        pyroute2_encodes(
            rtmsg,
            pr.RTM_DELROUTE,
            CHANGE,
            [
                ("RTA_TABLE", RT_TABLE_MAIN),
                ("RTA_DST", "10.244.2.0"),
                ("RTA_GATEWAY", "192.168.10.12"),
            ],
            family=2,
            dst_len=24,
            table=RT_TABLE_MAIN,
            proto=78,
            scope=pr.rt_scope["nowhere"],
            type=pr.rt_type["unicast"],
        ),
    )


@pytest.mark.parametrize(("address", "af"), [("10.1.2.3", 2), ("fd00:1::3", 10)])
def test_forgetting_a_neighbour(address, af):
    assert_one_message(
        lambda r: r.delete_neighbour(BRIDGE, address),
        pyroute2_encodes(
            ndmsg, pr.RTM_DELNEIGH, CHANGE, [("NDA_DST", address)], family=af, ifindex=BRIDGE.index
        ),
    )


def test_listing_the_neighbours_of_a_link():
    assert_one_message(
        lambda r: r.neighbours(VXLAN, 4),
        pyroute2_encodes(
            ndmsg,
            pr.RTM_GETNEIGH,
            DUMP,
            [("NDA_IFINDEX", VXLAN.index)],
            family=2,
            ifindex=VXLAN.index,
        ),
    )


def test_a_permanent_neighbour_entry():
    assert_one_message(
        lambda r: r.replace_neighbour(VXLAN, "10.244.3.0", "02:aa:bb:cc:dd:ee"),
        pyroute2_encodes(
            ndmsg,
            pr.RTM_NEWNEIGH,
            CHANGE | NLM_F_CREATE | NLM_F_REPLACE,
            [("NDA_DST", "10.244.3.0"), ("NDA_LLADDR", "02:aa:bb:cc:dd:ee")],
            family=2,
            ifindex=VXLAN.index,
            state=NUD_PERMANENT,
        ),
    )


def test_listing_replacing_and_deleting_forwarding_entries_of_a_vxlan_device():
    assert_one_message(
        lambda r: r.fdb(VXLAN),
        pyroute2_encodes(ifinfmsg, pr.RTM_GETNEIGH, DUMP, family=AF_BRIDGE, index=VXLAN.index),
    )
    assert_one_message(
        lambda r: r.replace_fdb(VXLAN, "02:aa:bb:cc:dd:ee", "192.168.10.13"),
        pyroute2_encodes(
            ndmsg,
            pr.RTM_NEWNEIGH,
            CHANGE | NLM_F_CREATE | NLM_F_REPLACE,
            [("NDA_LLADDR", "02:aa:bb:cc:dd:ee"), ("NDA_DST", "192.168.10.13")],
            family=AF_BRIDGE,
            ifindex=VXLAN.index,
            state=NUD_PERMANENT,
            flags=NTF_SELF,
        ),
    )
    assert_one_message(
        lambda r: r.delete_fdb(VXLAN, "02:aa:bb:cc:dd:ee"),
        pyroute2_encodes(
            ndmsg,
            pr.RTM_DELNEIGH,
            CHANGE,
            [("NDA_LLADDR", "02:aa:bb:cc:dd:ee")],
            family=AF_BRIDGE,
            ifindex=VXLAN.index,
            flags=NTF_SELF,
        ),
    )


# traffic control


@pytest.mark.parametrize(
    ("rate", "burst", "limit"),
    [
        (1_250_000, 12_500, 30_000),
        (5_000_000_000, 5_000_000, 10_000_000),
    ],
)
def test_replacing_the_root_tbf(rate, burst, limit):
    """Burst and rate chosen so that tc's float tick arithmetic has nothing to round."""
    parms = {
        "rate___reserved": LINKLAYER_ETHERNET,
        "rate": min(rate, 0xFFFFFFFF),
        "limit": limit,
        "buffer": calc_xmittime(rate, burst),
    }
    options = [("TCA_TBF_PARMS", parms), ("TCA_TBF_BURST", burst)]
    if rate > 0xFFFFFFFF:
        options.append(("TCA_TBF_RATE64", rate))
    assert_one_message(
        lambda r: tc.replace_tbf(r, HOST, rate, burst, limit),
        pyroute2_encodes(
            tcmsg,
            pr.RTM_NEWQDISC,
            CHANGE | NLM_F_CREATE | NLM_F_REPLACE,
            [("TCA_KIND", "tbf"), ("TCA_OPTIONS", {"attrs": options})],
            index=HOST.index,
            handle=0x10000,
            parent=sched_tbf.parent,
        ),
    )


def ingress_fields() -> dict[str, int]:
    request = {"index": HOST.index, "parent": sched_ingress.parent}
    sched_ingress.fix_request(request)
    return request


def test_adding_the_ingress_qdisc():
    assert_one_message(
        lambda r: tc.ensure_ingress(r, HOST),
        pyroute2_encodes(
            tcmsg, pr.RTM_NEWQDISC, CREATE, [("TCA_KIND", "ingress")], **ingress_fields()
        ),
    )


def test_deleting_the_ingress_qdisc():
    assert_one_message(
        lambda r: tc.delete_ingress(r, HOST),
        pyroute2_encodes(tcmsg, pr.RTM_DELQDISC, CHANGE, **ingress_fields()),
    )


def test_listing_qdiscs():
    assert_one_message(
        lambda r: tc.qdiscs(r, HOST),
        pyroute2_encodes(tcmsg, pr.RTM_GETQDISC, DUMP, index=HOST.index),
    )


def test_the_match_all_u32_filter_redirecting_to_an_ifb():
    request = {"protocol": ETH_P_ALL, "prio": 1}
    cls_u32.fix_request(request)
    action = common_act.get_tca_action(
        {
            "action": {
                "kind": "mirred",
                "direction": "egress",
                "action": "redirect",
                "ifindex": IFB.index,
            }
        }
    )
    options = [
        ("TCA_U32_CLASSID", 0x10001),
        ("TCA_U32_SEL", {"keys": ["0x0/0x0+0"]}),
        ("TCA_U32_ACT", action),
    ]
    assert_one_message(
        lambda r: tc.add_redirect(r, HOST, IFB),
        pyroute2_encodes(
            tcmsg,
            pr.RTM_NEWTFILTER,
            CREATE,
            [("TCA_KIND", "u32"), ("TCA_OPTIONS", {"attrs": options})],
            index=HOST.index,
            parent=ingress_fields()["handle"],
            info=request["info"],
        ),
    )


def test_listing_the_ingress_filters():
    assert_one_message(
        lambda r: tc.redirect_targets(r, HOST),
        pyroute2_encodes(
            tcmsg, pr.RTM_GETTFILTER, DUMP, index=HOST.index, parent=ingress_fields()["handle"]
        ),
    )


# nf_tables

NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17


def nf_tables(kind: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | kind


@pytest.mark.parametrize("family, nfproto", [(4, NFPROTO_IPV4), (6, NFPROTO_IPV6)])
def test_removing_a_pod_s_chain_lists_its_holder_then_deletes_in_one_batch(
    family, nfproto, monkeypatch
):
    """The listing of the dispatch chain, then one datagram: the batch's begin, the jumps
    deleted by handle, the chain emptied, the chain deleted, the batch's end."""
    capture = Capture()
    listed = Tables._jumps
    monkeypatch.setattr(Tables, "_jumps", lambda *args: listed(*args) or [7, 9])
    assert Tables(Channel(capture)).remove_chain(family, "nat", "NETC-DN-1", "NETC-HP")
    listing, batch = capture.sent
    table = [("NFTA_RULE_TABLE", "nat")]
    rule = {"nfgen_family": nfproto}

    def deleting(seq, message_class, kind, attrs):
        return pyroute2_encodes(message_class, nf_tables(kind), CHANGE, attrs, seq=seq, **rule)

    def batch_edge(seq, kind):
        return pyroute2_encodes(nfgen_msg, kind, NLM_F_REQUEST, seq=seq, res_id=10)

    jumps = [[*table, ("NFTA_RULE_CHAIN", "NETC-HP"), ("NFTA_RULE_HANDLE", h)] for h in (7, 9)]
    chain = [("NFTA_CHAIN_TABLE", "nat"), ("NFTA_CHAIN_NAME", "NETC-DN-1")]
    expected = [
        batch_edge(2, NFNL_MSG_BATCH_BEGIN),
        deleting(3, nft.nft_rule_msg, nft.NFT_MSG_DELRULE, jumps[0]),
        deleting(4, nft.nft_rule_msg, nft.NFT_MSG_DELRULE, jumps[1]),
        deleting(
            5, nft.nft_rule_msg, nft.NFT_MSG_DELRULE, [*table, ("NFTA_RULE_CHAIN", "NETC-DN-1")]
        ),
        deleting(6, nft.nft_chain_msg, nft.NFT_MSG_DELCHAIN, chain),
        batch_edge(7, NFNL_MSG_BATCH_END),
    ]
    asked = [*table, ("NFTA_RULE_CHAIN", "NETC-HP")]
    assert words(listing) == words(
        pyroute2_encodes(nft.nft_rule_msg, nf_tables(nft.NFT_MSG_GETRULE), DUMP, asked, **rule)
    )
    assert words(batch) == words(b"".join(expected))
