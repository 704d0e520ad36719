"""netc's decoder on real kernel replies, recorded once by record.py (no root needed here).

Each test replays one recorded conversation to netc's `Channel` and checks
what netc makes of it against the state scenes.py built with iproute2.  The
replay also checks that netc still sends the request the kernel answered.
"""

from __future__ import annotations

import errno
import math

import pytest

from runtime.netlink import tc, wire
from runtime.netlink.channel import DUMP_ATTEMPTS, NetlinkError
from runtime.netlink.rtnl import Address, Route
from tests.netlink.conversation import SENT, Conversation
from tests.netlink.scenes import (
    BRIDGE,
    HOST_VETH,
    IFB,
    MANY_ADDRESSES,
    MANY_BRIDGE,
    NODE_ADDRESSES,
    NODE_NSID_IN_POD,
    POD_ADDRESSES,
    POD_GATEWAYS,
    POD_NSID_IN_NODE,
    POD_VETH,
    TBF,
    TBF64,
    many_address,
    meddled_address,
    replayed,
)


def refused(name: str) -> NetlinkError:
    """The error netc raises on the recorded refusal."""
    with pytest.raises(NetlinkError) as caught:
        replayed(name)
    return caught.value


def flagged(name: str, flag: int) -> list[bool]:
    """For each request of a recording: did any reply to it carry `flag`?"""
    found: list[bool] = []
    for direction, data in Conversation.load(name).datagrams:
        if direction == SENT:
            found.append(False)
        else:
            found[-1] |= any(m.flags & flag for m in wire.messages(data))
    return found


def test_a_bridge_reads_with_its_kind_mtu_mac_and_flags():
    link = replayed("link-bridge")
    assert (link.index, link.name, link.kind) == (BRIDGE.index, BRIDGE.name, "bridge")
    assert (link.mtu, link.mac, link.up, link.promiscuous) == (BRIDGE.mtu, BRIDGE.mac, True, False)
    assert (link.master, link.peer, link.netnsid, link.hairpin) == (0, 0, None, None)


def test_the_host_veth_reads_with_its_master_hairpin_and_peer_in_the_pods_namespace():
    link = replayed("link-host-veth")
    assert (link.index, link.kind, link.mtu, link.mac) == (
        HOST_VETH.index,
        "veth",
        HOST_VETH.mtu,
        HOST_VETH.mac,
    )
    assert (link.master, link.hairpin, link.up) == (BRIDGE.index, True, True)
    assert (link.peer, link.netnsid) == (POD_VETH.index, POD_NSID_IN_NODE)


def test_the_pods_veth_names_its_peer_in_the_nodes_namespace():
    link = replayed("link-pod-veth")
    assert (link.index, link.name, link.kind) == (POD_VETH.index, POD_VETH.name, "veth")
    assert (link.peer, link.netnsid, link.master, link.hairpin) == (
        HOST_VETH.index,
        NODE_NSID_IN_POD,
        0,
        None,
    )


def test_an_ifb_reads_as_an_ifb_that_is_up():
    link = replayed("link-ifb")
    assert (link.index, link.kind, link.up, link.mtu) == (IFB.index, "ifb", True, IFB.mtu)


def test_a_link_that_is_not_there_is_none():
    assert replayed("link-absent") is None


def test_the_namespace_id_is_the_one_the_node_gave_the_pod():
    assert replayed("nsid") == POD_NSID_IN_NODE


def test_the_host_veth_is_paired_with_the_pods_end_by_index_and_namespace():
    assert replayed("paired") is True


def test_addresses_of_both_families_and_of_one():
    assert replayed("addresses-node") == [Address(BRIDGE.index, cidr) for cidr in NODE_ADDRESSES]
    assert replayed("addresses-pod-v4") == [Address(POD_VETH.index, POD_ADDRESSES[0])]


RTPROT_KERNEL, RTPROT_BOOT = 2, 3


@pytest.mark.parametrize(("family", "subnet"), [(4, "10.99.0.0/24"), (6, "fd00:99::/64")])
def test_the_main_table_holds_the_subnet_route_and_the_default_route(family, subnet):
    default = "0.0.0.0/0" if family == 4 else "::/0"
    assert set(replayed(f"routes-pod-v{family}")) == {
        Route(subnet, None, POD_VETH.index, protocol=RTPROT_KERNEL),
        Route(default, POD_GATEWAYS[family], POD_VETH.index, protocol=RTPROT_BOOT),
    }


def test_qdiscs_are_found_by_parent():
    kinds = {parent: kind for parent, (kind, _) in replayed("qdiscs-host-veth").items()}
    assert kinds == {tc.TC_H_ROOT: "tbf", tc.TC_H_INGRESS: "ingress"}


@pytest.mark.parametrize(("name", "expected"), [("tbf", TBF), ("tbf-rate64", TBF64)])
def test_tbf_parameters_read_back_as_tc_set_them(name, expected):
    """The bucket comes back as a time in 64 ns ticks: exact to within one tick of bytes."""
    found = replayed(name)
    assert (found.rate, found.limit) == (expected.rate, expected.limit)
    tick = math.ceil(tc.PSCHED_NS_PER_TICK * expected.rate / 10**9)
    assert abs(found.burst - expected.burst) <= tick


def test_the_redirect_filter_names_the_ifb_and_a_link_without_ingress_has_none():
    assert replayed("redirect") == [IFB.index]
    assert replayed("redirect-none") == []


def test_an_acknowledged_change_returns_quietly():
    assert replayed("set-up") is None


def test_a_dump_over_several_datagrams_is_read_whole():
    assert len(Conversation.load("addresses-many").received()) >= 3
    assert replayed("addresses-many") == [
        Address(MANY_BRIDGE.index, many_address(n)) for n in range(MANY_ADDRESSES)
    ]


def test_an_interrupted_dump_is_asked_again_and_the_second_listing_is_used():
    assert flagged("dump-interrupted", wire.NLM_F_DUMP_INTR) == [True, False]
    cidrs = {address.cidr for address in replayed("dump-interrupted")}
    assert cidrs == {many_address(n) for n in range(MANY_ADDRESSES)} | {meddled_address(1)}


def test_a_dump_interrupted_at_every_attempt_fails_saying_so():
    assert flagged("dump-interrupted-always", wire.NLM_F_DUMP_INTR) == [True] * DUMP_ATTEMPTS
    error = refused("dump-interrupted-always")
    assert error.errno == errno.EINTR
    assert f"{DUMP_ATTEMPTS} times in a row (NLM_F_DUMP_INTR)" in str(error)


@pytest.mark.parametrize(
    ("name", "capped"), [("error-unknown-kind", True), ("error-unknown-kind-uncapped", False)]
)
def test_the_kernels_own_reason_is_in_the_error(name, capped):
    error_flags = [
        m.flags
        for datagram in Conversation.load(name).received()
        for m in datagram
        if m.kind == wire.NLMSG_ERROR
    ]
    assert [bool(f & wire.NLM_F_CAPPED) for f in error_flags] == [capped]
    error = refused(name)
    assert (error.errno, error.detail) == (errno.EOPNOTSUPP, "Unknown device type")
    assert str(error).endswith(
        "create no-such-kind bogus0: Operation not supported: Unknown device type"
    )


def test_a_refused_mtu_says_why_and_a_plain_refusal_has_no_detail():
    error = refused("error-mtu")
    assert (error.errno, error.detail) == (errno.EINVAL, "mtu less than device minimum")
    error = refused("error-exists")
    assert (error.errno, error.detail) == (errno.EEXIST, None)
    assert str(error).endswith(f"create bridge {BRIDGE.name}: File exists")
