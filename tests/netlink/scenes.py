"""The kernel state the replies under replies/ were recorded from, and the calls recorded.

`record.py` builds this state with iproute2 (not with netc) in three
namespaces of its own: `node` (a bridge, the host end of a veth pair with a
TBF, an ingress qdisc and a redirect to an ifb), `pod` (the other end, its
addresses and routes) and `many` (120 addresses, for dumps that span several
datagrams).  Every index, MAC, namespace id and number is fixed here, so a
re-recording gives the same answers and the decoding tests can say exactly
what netc must read.  Each `Scene` is one netc call; the recorder keeps the
conversation it had with the kernel, the tests replay it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.netlink import tc
from runtime.netlink.channel import Channel
from runtime.netlink.rtnl import Link, Rtnl
from tests.netlink.conversation import REPLIES, Conversation, Replay


@dataclass(frozen=True)
class Interface:
    """A link the recording namespaces have, with everything about it fixed."""

    name: str
    index: int
    mac: str
    mtu: int


NODE, POD, MANY = "node", "pod", "many"
BRIDGE = Interface("br0", 10, "02:00:00:00:00:10", 1400)
HOST_VETH = Interface("h0", 11, "02:00:00:00:00:11", 1400)
IFB = Interface("ifb0", 12, "02:00:00:00:00:12", 1500)
POD_VETH = Interface("eth0", 21, "02:00:00:00:00:21", 1400)
MANY_BRIDGE = Interface("many0", 30, "02:00:00:00:00:30", 1500)
POD_NSID_IN_NODE = 7
"""The id the node's namespace gives the pod's (`ip netns set`)."""
NODE_NSID_IN_POD = 3
NODE_ADDRESSES = ("10.99.0.1/24", "fd00:99::1/64")
POD_ADDRESSES = ("10.99.0.5/24", "fd00:99::5/64")
POD_GATEWAYS = {4: "10.99.0.1", 6: "fd00:99::1"}
TBF = tc.Tbf(rate=1_250_000, burst=12_500, limit=30_000)
"""10mbit; a burst of a whole number of 64 ns ticks, so it reads back exactly."""
TBF64 = tc.Tbf(rate=5_000_000_000, burst=5_000_000, limit=10_000_000)
"""40gbit: more bytes/s than 32 bits hold, so the kernel reports TCA_TBF_RATE64.

A tick is 320 bytes at this rate, and the kernel's rate arithmetic rounds the
bucket down by one.
"""
MANY_ADDRESSES = 120
POD_FD = 100
"""The descriptor number the recorder gives the pod's namespace (it is part of the request)."""


def many_address(number: int) -> str:
    """The `number`th address on many0 (from 0)."""
    return f"10.77.{number // 250}.{number % 250 + 1}/32"


def meddled_address(number: int) -> str:
    """The address the recorder adds to many0 at its `number`th intrusion (from 1)."""
    return f"10.78.0.{number}/32"


def setup(names: dict[str, str]) -> list[list[str]]:
    """The iproute2 commands that build the state, given the real namespace names."""
    node, pod, many = names[NODE], names[POD], names[MANY]
    commands = [
        f"ip -n {node} netns set {pod} {POD_NSID_IN_NODE}",
        f"ip -n {pod} netns set {node} {NODE_NSID_IN_POD}",
        _link(node, BRIDGE, "type bridge"),
        _link(
            node,
            HOST_VETH,
            f"type veth peer name {POD_VETH.name} index {POD_VETH.index} "
            f"address {POD_VETH.mac} mtu {POD_VETH.mtu} netns {pod}",
        ),
        _link(node, IFB, "type ifb"),
        _link(many, MANY_BRIDGE, "type bridge"),
        f"ip -n {node} link set {HOST_VETH.name} master {BRIDGE.name}",
        f"ip -n {node} link set {HOST_VETH.name} type bridge_slave hairpin on",
    ]
    for netns, link in ((node, BRIDGE), (node, HOST_VETH), (node, IFB), (pod, POD_VETH)):
        commands += [
            f"ip -n {netns} link set {link.name} addrgenmode none",
            f"ip -n {netns} link set {link.name} up",
        ]
    for netns, link, addresses in ((node, BRIDGE, NODE_ADDRESSES), (pod, POD_VETH, POD_ADDRESSES)):
        commands += [
            f"ip -n {netns} address add {cidr} dev {link.name} nodad"
            if ":" in cidr
            else f"ip -n {netns} address add {cidr} dev {link.name}"
            for cidr in addresses
        ]
    commands += [
        f"ip -n {pod} -{family} route add default via {gateway} dev {POD_VETH.name}"
        for family, gateway in POD_GATEWAYS.items()
    ]
    commands += [
        _tbf(node, HOST_VETH, TBF, "10mbit"),
        _tbf(node, IFB, TBF64, "40gbit"),
        f"tc -n {node} qdisc add dev {HOST_VETH.name} handle ffff: ingress",
        f"tc -n {node} filter add dev {HOST_VETH.name} parent ffff: protocol all prio 1 u32 "
        f"match u32 0 0 flowid 1:1 action mirred egress redirect dev {IFB.name}",
    ]
    return [command.split() for command in commands]


def many_batch() -> str:
    """`ip -batch` input putting MANY_ADDRESSES addresses on many0."""
    return "".join(
        f"address add {many_address(n)} dev {MANY_BRIDGE.name}\n" for n in range(MANY_ADDRESSES)
    )


def _link(netns: str, link: Interface, kind: str) -> str:
    return (
        f"ip -n {netns} link add {link.name} index {link.index} address {link.mac} "
        f"mtu {link.mtu} {kind}"
    )


def _tbf(netns: str, link: Interface, tbf: tc.Tbf, rate: str) -> str:
    return (
        f"tc -n {netns} qdisc add dev {link.name} root handle 1: tbf rate {rate} "
        f"burst {tbf.burst} limit {tbf.limit}"
    )


def pod_link() -> Link:
    """The pod's end of the pair as netc would have read it (only its index matters)."""
    return Link(
        POD_VETH.index,
        POD_VETH.name,
        "veth",
        0,
        POD_VETH.mtu,
        POD_VETH.mac,
        0,
        HOST_VETH.index,
        NODE_NSID_IN_POD,
        None,
    )


@dataclass(frozen=True)
class Scene:
    """One netc call recorded against the kernel.

    `meddle` says when the recorder changes the `many` namespace behind
    netc's back (adds an address) -- right after the first datagram answering
    the first request ("once") or every request ("always") -- so that the
    kernel flags the dump interrupted.  `capped` False records on a socket
    that has the kernel echo the whole failed request in an error.
    """

    name: str
    what: str
    netns: str
    call: Callable[[Rtnl], object]
    meddle: str = "never"
    capped: bool = True


SCENES = {
    scene.name: scene
    for scene in (
        Scene("link-bridge", "the bridge, by name", NODE, lambda r: r.link(BRIDGE.name)),
        Scene(
            "link-host-veth",
            "the host end of the veth: master, hairpin, peer in the pod",
            NODE,
            lambda r: r.link(HOST_VETH.name),
        ),
        Scene(
            "link-pod-veth",
            "the pod's end of the veth: peer in the node",
            POD,
            lambda r: r.link(POD_VETH.name),
        ),
        Scene("link-ifb", "the ifb", NODE, lambda r: r.link(IFB.name)),
        Scene("link-absent", "a link that is not there", NODE, lambda r: r.link("absent0")),
        Scene("nsid", "the id the node gives the pod's namespace", NODE, lambda r: r.nsid(POD_FD)),
        Scene(
            "paired",
            "the host veth checked against the pod's end",
            NODE,
            lambda r: r.paired(r.link(HOST_VETH.name), pod_link(), POD_FD),
        ),
        Scene("addresses-node", "every address of the node", NODE, lambda r: r.addresses()),
        Scene("addresses-pod-v4", "the pod's IPv4 addresses", POD, lambda r: r.addresses(4)),
        Scene("routes-pod-v4", "the pod's IPv4 main table", POD, lambda r: r.routes(4)),
        Scene("routes-pod-v6", "the pod's IPv6 main table", POD, lambda r: r.routes(6)),
        Scene(
            "qdiscs-host-veth",
            "the qdiscs of the host veth",
            NODE,
            lambda r: tc.qdiscs(r, r.link(HOST_VETH.name)),
        ),
        Scene(
            "tbf",
            "the TBF of the host veth",
            NODE,
            lambda r: tc.root_tbf(r, r.link(HOST_VETH.name)),
        ),
        Scene(
            "tbf-rate64",
            "the 40gbit TBF of the ifb",
            NODE,
            lambda r: tc.root_tbf(r, r.link(IFB.name)),
        ),
        Scene(
            "redirect",
            "the redirect filter of the host veth",
            NODE,
            lambda r: tc.redirect_targets(r, r.link(HOST_VETH.name)),
        ),
        Scene(
            "redirect-none",
            "filters of a link without an ingress qdisc",
            NODE,
            lambda r: tc.redirect_targets(r, r.link(BRIDGE.name)),
        ),
        Scene(
            "set-up",
            "a change the kernel acknowledges",
            NODE,
            lambda r: r.set_flags(r.link(IFB.name), up=True),
        ),
        Scene(
            "addresses-many",
            f"{MANY_ADDRESSES} addresses: a dump over several datagrams",
            MANY,
            lambda r: r.addresses(4),
        ),
        Scene(
            "dump-interrupted",
            "an address dump the kernel flags interrupted once",
            MANY,
            lambda r: r.addresses(4),
            meddle="once",
        ),
        Scene(
            "dump-interrupted-always",
            "an address dump interrupted at every attempt",
            MANY,
            lambda r: r.addresses(4),
            meddle="always",
        ),
        Scene(
            "error-unknown-kind",
            "a link of a kind the kernel does not know",
            NODE,
            lambda r: r.create("bogus0", "no-such-kind"),
        ),
        Scene(
            "error-unknown-kind-uncapped",
            "the same on a socket without NETLINK_CAP_ACK",
            NODE,
            lambda r: r.create("bogus0", "no-such-kind"),
            capped=False,
        ),
        Scene(
            "error-mtu",
            "an MTU below the device's minimum",
            NODE,
            lambda r: r.set_mtu(r.link(HOST_VETH.name), 10),
        ),
        Scene(
            "error-exists",
            "a bridge whose name is taken",
            NODE,
            lambda r: r.create(BRIDGE.name, "bridge"),
        ),
    )
}


def replayed(name: str, directory: Path = REPLIES) -> object:
    """What a scene's netc call returns when its recording (NAME.txt) answers it.

    The recording must be used up: netc asks exactly what it asked the kernel.
    """
    replay = Replay(Conversation.load(name, directory).datagrams)
    try:
        return SCENES[name].call(Rtnl(Channel(replay)))
    finally:
        assert replay.finished, f"netc stopped before the end of {name}.txt"
