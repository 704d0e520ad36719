"""The node plan's peer handlers without a kernel: ownership, differences, what a prune removes.

These are the decisions the handlers take from what the kernel reported; the
kernel tests in tests/cluster check the effects.  Links and routes here are
built as rtnl would decode them (a VXLAN's settings as encoded bytes).
"""

from __future__ import annotations

from compiler import datatypes
from compiler.planner.ops import Operation, Phase
from compiler.planner.params import LinkVxlanParams, NodePruneParams, RouteNodeParams
from runtime.apply import AppliedChange
from runtime.netlink.rtnl import (
    IFF_UP,
    NUD_PERMANENT,
    RTNH_F_ONLINK,
    FdbEntry,
    Link,
    Neighbour,
    Route,
)
from runtime.netlink.vxlan import (
    IFLA_VXLAN_COLLECT_METADATA,
    IFLA_VXLAN_GBP,
    IFLA_VXLAN_GROUP6,
    IFLA_VXLAN_PORT,
    Vxlan,
    vxlan_data,
    vxlan_settings,
)
from runtime.netlink.wire import Attr
from runtime.ops.peers import (
    RouteState,
    clash,
    describe,
    foreign,
    matches,
    stale_entries,
    stale_links,
    stale_routes,
    vxlan_differences,
)

ALIAS = "netc cluster prod"
MAC = "82:76:62:1f:50:c4"
DEVICE = LinkVxlanParams(
    name="netc.1", vni=1, port=8472, local="192.168.10.11", mtu=1450, mac=MAC, alias=ALIAS
)
PRUNE = NodePruneParams(
    cluster="prod",
    pod_cidrs=("10.244.0.0/16", "fd00:10:244::/56"),
    protocol=78,
    routes=("10.244.2.0/24", "fd00:10:244:2::/64"),
    device="netc.1",
    neighbours=("10.244.2.0", "fd00:10:244:2::"),
    fdb=(MAC,),
    alias=ALIAS,
)


def _link(
    name="netc.1",
    *,
    kind="vxlan",
    alias=ALIAS,
    mac=MAC,
    mtu=1450,
    settings=None,
    index=7,
    extra=(),
    up=False,
) -> Link:
    attrs = [*vxlan_data(settings or Vxlan(1, 8472, "192.168.10.11")), *extra]
    data = b"".join(a.encode() for a in attrs) if kind == "vxlan" else b""
    return Link(
        index,
        name,
        kind,
        IFF_UP if up else 0,
        mtu,
        mac,
        0,
        0,
        None,
        None,
        alias=alias,
        info_data=data,
    )


def test_vxlan_settings_round_trip_with_the_port_in_network_byte_order():
    for local in ("192.168.10.11", "fd00:192:168:10::11", None):
        settings = Vxlan(16777215, 8472, local)
        assert vxlan_settings(_link(settings=settings)) == settings
    (port,) = [a for a in vxlan_data(Vxlan(1, 8472, None)) if a.kind == IFLA_VXLAN_PORT]
    assert port == Attr(IFLA_VXLAN_PORT, b"\x21\x18")
    assert vxlan_settings(_link(kind="bridge")) is None


def test_only_a_vxlan_with_the_clusters_alias_or_an_unaliased_one_with_the_derived_mac_is_ours():
    assert foreign(_link(), DEVICE) is None
    assert foreign(_link(alias=None), DEVICE) is None  # created, alias not yet set
    assert "not netc's VXLAN device" in foreign(_link(kind="veth"), DEVICE)
    assert "did not create" in foreign(_link(alias="netc cluster other"), DEVICE)
    assert "did not create" in foreign(_link(alias=None, mac="02:00:00:00:00:01"), DEVICE)


def test_the_tunnel_needs_a_new_device_while_mtu_mac_and_alias_are_repaired():
    assert vxlan_differences(DEVICE, _link()) == ([], [])
    rebuild, repair = vxlan_differences(
        DEVICE, _link(settings=Vxlan(2, 4789, "192.168.10.99"), mtu=1500, alias=None)
    )
    assert rebuild == [
        "vni 2, want 1",
        "port 4789, want 8472",
        "local 192.168.10.99, want 192.168.10.11",
    ]
    assert repair == ["mtu 1500, want 1450", f"alias None, want {ALIAS}"]
    learning = _link(settings=Vxlan(1, 8472, "192.168.10.11", learning=True))
    assert vxlan_differences(DEVICE, learning)[0] == ["learning True, want False"]


def test_a_planned_route_matches_its_gateway_and_when_tunnelled_its_device_onlink():
    device = _link()
    direct = Route("10.244.2.0/24", "192.168.10.12", 3, 78)
    tunnel = Route("10.244.3.0/24", "10.244.3.0", device.index, 78, RTNH_F_ONLINK)
    assert matches(direct, "192.168.10.12", None)
    assert not matches(direct, "192.168.10.13", None)
    assert matches(tunnel, "10.244.3.0", device)
    assert not matches(datatypes.replace(tunnel, flags=0), "10.244.3.0", device)
    assert not matches(datatypes.replace(tunnel, oif=3), "10.244.3.0", device)
    assert not matches(Route("10.244.2.0/24", None, 3, 78), "192.168.10.12", None)


def test_routes_to_a_destination_split_by_owner_and_described_as_ip_route_shows_them():
    mine = Route("10.244.2.0/24", "192.168.10.12", 3, 78)
    theirs = Route("10.244.2.0/24", None, 9, 4, RTNH_F_ONLINK)
    assert RouteState.of([mine, theirs], 78) == RouteState([mine], [theirs])
    assert describe(theirs, {9: "eth9"}) == "10.244.2.0/24 dev eth9 onlink proto static"
    assert describe(mine) == "10.244.2.0/24 via 192.168.10.12 dev #3 proto 78"


def test_a_prune_removes_only_netcs_unplanned_routes_inside_the_pod_cidrs():
    kept = Route("10.244.2.0/24", "192.168.10.12", 3, 78)
    removed_peer = Route("10.244.4.0/24", "192.168.10.14", 3, 78)
    removed_v6 = Route("fd00:10:244:4::/64", "fd00:10:244:4::", 7, 78, RTNH_F_ONLINK)
    other_protocol = Route("10.244.200.0/24", None, 5, 4)
    outside = Route("203.0.113.0/24", None, 5, 78)
    on_a_gone_link = Route("10.244.5.0/24", "10.244.5.0", 12, 78, RTNH_F_ONLINK)
    routes = [kept, removed_peer, removed_v6, other_protocol, outside, on_a_gone_link]
    assert stale_routes(PRUNE, routes, gone={12}) == [removed_peer, removed_v6]


def test_a_prune_removes_unplanned_permanent_entries_and_links_with_the_alias_but_the_device():
    planned = Neighbour(7, "10.244.2.0", MAC, NUD_PERMANENT)
    stale = Neighbour(7, "fd00:10:244:4::", "02:00:00:00:00:04", NUD_PERMANENT)
    learned = Neighbour(7, "10.244.9.9", "02:00:00:00:00:09", 0x02)
    entries = [
        FdbEntry(7, MAC, "192.168.10.12", NUD_PERMANENT),
        FdbEntry(7, "02:00:00:00:00:04", "192.168.20.14", NUD_PERMANENT),
    ]
    assert stale_entries(PRUNE, [planned, stale, learned], entries) == ([stale], entries[1:])
    links = [
        _link(),
        _link("netc.old", index=8),
        _link("vx-other", alias="someone", index=9),
        _link("eth0", kind="veth", alias=None, index=2),
    ]
    assert stale_links(PRUNE, links) == [links[1]]
    assert [link.name for link in stale_links(datatypes.replace(PRUNE, device=None), links)] == [
        "netc.1",
        "netc.old",
    ]


def test_apply_prints_each_removal_of_a_prune_and_one_line_for_any_other_change():
    prune = Operation("cluster prod", "remove ...", PRUNE, Phase.PEERS)
    route = Operation(
        "10.244.2.0/24 via x",
        "route to node-b's pods",
        RouteNodeParams("10.244.2.0/24", "x", None, False, 78),
        Phase.PEERS,
    )
    assert AppliedChange(prune, ("route a", "fdb b")).lines() == ["- route a", "- fdb b"]
    assert AppliedChange(route).lines() == ["+ route to node-b's pods"]
    assert AppliedChange(route, ("replaced x",)).lines() == [
        "+ route to node-b's pods (replaced x)"
    ]


EXTERNAL = (Attr(IFLA_VXLAN_COLLECT_METADATA, b"\x01"),)


def test_receive_modes_and_the_group_are_read_back_as_the_kernel_reports_them():
    """External is a u8 reported always (0: off); GBP is a flag, present when set."""
    plain = vxlan_settings(_link(extra=(Attr(IFLA_VXLAN_COLLECT_METADATA, b"\x00"),)))
    assert (plain.receive, plain.family) == ((), 4)
    both = vxlan_settings(_link(extra=(*EXTERNAL, Attr(IFLA_VXLAN_GBP, b""))))
    assert both.receive == ("external", "gbp")
    group = vxlan_settings(
        _link(
            settings=Vxlan(1, 8472, None),
            extra=(Attr(IFLA_VXLAN_GROUP6, bytes.fromhex("ff0e" + "00" * 13 + "01")),),
        )
    )
    assert (group.group, group.family) == ("ff0e::1", 6)


def test_another_device_with_the_vni_port_and_family_clashes_whatever_its_local_address():
    """The kernel's rule ("A VXLAN device with the specified VNI already exists"), and the
    fix: flannel's own device is named as flannel's."""
    flannel = _link("flannel.1", alias=None, settings=Vxlan(1, 8472, "192.168.10.99"))
    assert clash(DEVICE, flannel) == (
        "flannel.1 (VXLAN 1, UDP port 8472) is in the way: the kernel refuses a second VXLAN "
        "device with VNI 1 on UDP port 8472; it is flannel's: remove flannel first (kubectl "
        "delete -f kube-flannel.yml; ip link del flannel.1), or give the cluster's routing "
        "another `vni` or `port`"
    )
    other = clash(DEVICE, _link("vx0", alias=None))
    assert other.endswith(
        "remove it (ip link del vx0) if nothing uses it, or give the "
        "cluster's routing another `vni` or `port`"
    )
    for apart in (
        Vxlan(2, 8472, "192.168.10.11"),
        Vxlan(1, 4789, "192.168.10.11"),
        Vxlan(1, 8472, "fd00::11"),
    ):
        assert clash(DEVICE, _link("vx0", alias=None, settings=apart)) is None, apart
    assert clash(DEVICE, _link()) is None, "the planned device itself"
    assert clash(DEVICE, _link("br0", kind="bridge", alias=None)) is None


def test_a_device_of_another_receive_mode_clashes_only_while_it_holds_the_port_open():
    def external(up: bool) -> Link:
        return _link("vx-ext", alias=None, settings=Vxlan(0, 8472, None), extra=EXTERNAL, up=up)

    assert clash(DEVICE, external(up=False)) is None, "down: no socket"
    up = external(up=True)
    assert "holds UDP port 8472 open for another kind of VXLAN device" in clash(DEVICE, up)
    assert clash(DEVICE, up).endswith("give the cluster's routing another `port`")
