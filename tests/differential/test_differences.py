"""Every documented difference between the stock plugins and netc, observed.

docs/differences.md lists them; each test here shows one on the two kernels
(iptables-save, tc, ip -d link, sysctl, and traffic where it changes what a
pod sees), as {"reference": ..., "netc": ...}, so the page cannot drift from
what the code does.  The pods example is used unless a difference needs
another network: `web` has host port 30000 (TCP and UDP) and explicit-burst
limits, `peer` has nothing (see tests/differential/checks.py).
"""

import json
import sys

from compiler.planner.context import BandwidthRequest, PortMapping
from runtime.driver import PluginFailed
from tests.differential import checks
from tests.differential.twins import BRIDGE_NF, TwinLab, compiled, each
from tests.kernel.lab import CLIENT_IP, NODE_IP

CONTAINERD_RATE = 20_000_000
"""Fast enough that the reference's 512 MiB bucket keeps its size in tc's 32-bit ticks."""


def _populate(
    twins: dict[str, TwinLab], example: str = "pods", network: str | None = None
) -> checks.Scenario:
    """Both labs with the differential scenario of an example (or of one of its networks)."""
    networks = tuple(n for n in compiled(example) if network in (None, n.name))
    plan = checks.scenario(networks)
    each(twins, lambda lab: checks.populate(lab, plan))
    return plan


def _attempt(lab: TwinLab, network: str, role: str, **options) -> str:
    """An ADD's outcome: "attached", or the CNI error code it was refused with."""
    try:
        lab.attach(network, role, **options)
    except PluginFailed as failure:
        return f"refused {failure.error['code']}"
    return "attached"


def _root_qdisc(lab: TwinLab, device: str) -> dict:
    (root,) = [
        q
        for q in json.loads(lab.node_text("tc", "-j", "qdisc", "show", "dev", device))
        if q.get("root")
    ]
    return root


def test_containerd_default_burst_leaves_a_short_run_unshaped_on_the_reference_only(twins):
    """containerd sends burst 4294967295 bits when a pod gives none (kubernetes#90838)."""
    for lab in twins.values():
        lab.build(compiled("pods"))
    request = BandwidthRequest(ingress_rate=CONTAINERD_RATE)
    each(twins, lambda lab: lab.attach("pods", "web", request=request))
    buckets = each(twins, lambda lab: _root_qdisc(lab, lab.host_veth("pods/web"))["options"])
    kilobytes = {t: round(b["burst"] / 1000) for t, b in buckets.items()}
    assert kilobytes == {"reference": round(2**29 / 1000), "netc": CONTAINERD_RATE // 8 // 10000}
    rates = each(twins, lambda lab: lab.iperf_average("pods/web", "ingress", seconds=2))
    print(
        f"2 s iperf3 to a pod limited to {CONTAINERD_RATE / 1e6:.0f} Mbit/s, containerd's "
        f"burst: " + ", ".join(f"{t} {r / 1e6:.1f} Mbit/s" for t, r in rates.items())
    )
    assert rates["reference"] > 5 * CONTAINERD_RATE
    assert abs(rates["netc"] / CONTAINERD_RATE - 1) <= checks.TOLERANCE


def test_the_same_explicit_burst_gives_the_same_buckets_up_to_the_kernel_s_rounding(twins):
    """netc passes the bucket in bytes (TCA_TBF_BURST) and the kernel turns it into time
    with its own arithmetic; the reference passes the time in ticks.  tc shows the
    bucket converted back: a few bytes apart at most."""
    _populate(twins)

    def buckets(lab: TwinLab) -> list[tuple[int, int]]:
        (ifb, _), *_ = lab.redirects("pods/web")
        return [
            (q["options"]["rate"], q["options"]["burst"])
            for q in (_root_qdisc(lab, d) for d in (lab.host_veth("pods/web"), ifb))
        ]

    assert each(twins, buckets) == {
        "reference": [(1_500_000, 75_000), (1_000_000, 50_000)],
        "netc": [(1_500_000, 74_998), (1_000_000, 50_000)],
    }


def test_netc_turns_on_bridge_nf_call_iptables_so_hairpin_needs_hairpin_mode(twins):
    """br_netfilter bridges NAT back out the port it came in; the reference routes it."""
    each(twins, lambda lab: lab.sysctl(BRIDGE_NF, "0"))
    plan = _populate(twins, "multi", "batch")
    assert each(twins, lambda lab: lab.sysctl(BRIDGE_NF)) == {"reference": "0", "netc": "1"}

    def own_host_port(lab: TwinLab) -> bool:
        return lab.ask(lab.pods["batch/web"].name, "tcp", NODE_IP, plan.ports["batch"]) is not None

    assert each(twins, own_host_port) == {"reference": True, "netc": False}
    twins["reference"].sysctl(BRIDGE_NF, "1")
    assert each(twins, own_host_port) == {"reference": False, "netc": False}


def test_a_duplicate_host_port_is_refused_by_netc_and_shadowed_by_portmap(twins):
    plan = _populate(twins)
    port = plan.ports["pods"]
    taken = (PortMapping(port, checks.SERVICE_PORT, "tcp"),)
    outcome = each(twins, lambda lab: _attempt(lab, "pods", "thief", mappings=taken))
    assert outcome == {"reference": "attached", "netc": "refused 103"}
    for lab in twins.values():
        lab.serve(lab.pods["pods/thief"].name, "tcp", checks.SERVICE_PORT, "thief")
    answers = each(twins, lambda lab: lab.ask(lab.client, "tcp", NODE_IP, port))
    assert answers == dict.fromkeys(twins, f"pods/web {CLIENT_IP}")


def test_masquerade_is_one_chain_per_network_in_netc_and_a_jump_per_pod_in_the_reference(twins):
    _populate(twins)

    def postrouting(lab: TwinLab) -> int:
        return lab.node_text("iptables-save", "-t", "nat").count("-A POSTROUTING ")

    before = each(twins, postrouting)
    each(twins, lambda lab: lab.attach("pods", "third"))
    after = each(twins, postrouting)
    assert (before, after) == ({"reference": 3, "netc": 1}, {"reference": 4, "netc": 1})


def test_hairpin_snat_matches_the_dnat_state_in_netc_and_mark_bit_13_in_the_reference(twins):
    """A foreign use of mark 0x2000 makes the reference masquerade traffic from outside."""
    plan = _populate(twins)

    def style(lab: TwinLab) -> dict[str, bool]:
        nat = lab.node_text("iptables-save", "-t", "nat")
        return {
            "mark": "-j MARK --set-xmark 0x2000/0x2000" in nat,
            "ctstate": "--ctstate DNAT -j MASQUERADE" in nat,
        }

    assert each(twins, style) == {
        "reference": {"mark": True, "ctstate": False},
        "netc": {"mark": False, "ctstate": True},
    }
    each(
        twins,
        lambda lab: lab.run(
            lab.node,
            "iptables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-i",
            "eth0",
            "-j",
            "MARK",
            "--set-xmark",
            "0x2000/0x2000",
        ),
    )
    seen = each(twins, lambda lab: lab.ask(lab.client, "tcp", NODE_IP, plan.ports["pods"]))
    assert seen == {"reference": "pods/web 10.244.1.1", "netc": f"pods/web {CLIENT_IP}"}


def test_netc_forgets_udp_conntrack_entries_of_a_host_port_on_del_too(twins):
    plan = _populate(twins)
    port = plan.ports["pods"]
    answers = each(twins, lambda lab: lab.ask(lab.client, "udp", NODE_IP, port, source_port=40053))
    assert answers == dict.fromkeys(twins, f"pods/web {CLIENT_IP}")
    each(
        twins,
        lambda lab: lab.detach(
            "pods/web", mappings=plan.mappings("pods"), request=plan.requests["pods"]
        ),
    )

    def remembered(lab: TwinLab) -> bool:
        listing = lab.run(
            lab.node, "conntrack", "-L", "-p", "udp", "--orig-port-dst", str(port), check=False
        )
        return f"dport={port}" in listing.stdout

    assert each(twins, remembered) == {"reference": True, "netc": False}


def test_debian_reference_veths_and_ifbs_have_no_transmit_queue(twins):
    """Plugins <= 1.5 leave txqueuelen 0; a qdisc added later makes the kernel raise it."""
    _populate(twins)

    def queues(lab: TwinLab) -> dict[str, set[int]]:
        ifbs = json.loads(lab.node_text("ip", "-d", "-j", "link", "show", "type", "ifb"))
        return {
            "pod eth0": {lab.link(k, "eth0").get("txqlen", 0) for k in lab.pods},
            "peer host veth": {lab.link("node", lab.host_veth("pods/peer")).get("txqlen", 0)},
            "ifb": {i.get("txqlen", 0) for i in ifbs},
        }

    assert each(twins, queues) == {
        "reference": {"pod eth0": {0}, "peer host veth": {0}, "ifb": {0}},
        "netc": {"pod eth0": {1000}, "peer host veth": {1000}, "ifb": {32}},
    }


def test_the_reference_redirect_filter_carries_two_mirred_actions(twins):
    _populate(twins)

    actions = each(twins, lambda lab: [verdict for _, verdict in lab.redirects("pods/web")])
    assert actions == {"reference": ["stolen", "pass"], "netc": ["stolen"]}


def test_netc_puts_ipv6_addresses_on_without_duplicate_address_detection(twins):
    """The reference's gateway on the bridge is tentative (unusable) for a while after ADD."""
    _populate(twins)

    def gateway_flags(lab: TwinLab) -> bool:
        (bridge,) = json.loads(lab.node_text("ip", "-6", "-j", "addr", "show", "dev", "cni0"))
        (gateway,) = [a for a in bridge["addr_info"] if a["scope"] == "global"]
        return gateway.get("nodad", False)

    assert each(twins, gateway_flags) == {"reference": False, "netc": True}


def test_policy_is_enforced_by_netc_only(twins):
    """Host port deny rules and bandwidth defaults cannot be expressed in the stock chain."""
    _populate(twins)
    denied = (PortMapping(22, 22, "tcp"),)
    outcome = each(twins, lambda lab: _attempt(lab, "pods", "ssh", mappings=denied))
    assert outcome == {"reference": "attached", "netc": "refused 101"}
    shaping = each(twins, lambda lab: _root_qdisc(lab, lab.host_veth("pods/peer"))["kind"])
    assert shaping == {"reference": "noqueue", "netc": "tbf"}


def test_a_pod_cannot_give_the_node_a_route_with_a_router_advertisement(twins):
    """CVE-2020-10749: both targets keep the bridge from accepting RAs, on IPv4-only
    networks too.  netc's host veth has no IPv6 at all (the reference's has it, with
    accept_ra=0): a bridge port's own IPv6 stack never sees a frame."""
    _populate(twins, "minimal")
    for lab in twins.values():
        lab.run(
            lab.pods["minimal/peer"].name,
            sys.executable,
            "-m",
            "tests.differential.rogue_ra",
            "eth0",
        )

    def routed_by_a_pod(lab: TwinLab) -> bool:
        return lab.wait_for(
            lambda: "proto ra" in lab.node_text("ip", "-6", "route", "show", "default"), timeout=1
        )

    assert each(twins, routed_by_a_pod) == dict.fromkeys(twins, False)
    assert each(twins, lambda lab: lab.sysctl("net.ipv6.conf.cni0.accept_ra")) == dict.fromkeys(
        twins, "0"
    )
    host_veths = each(
        twins,
        lambda lab: lab.sysctl(f"net.ipv6.conf.{lab.host_veth('minimal/peer')}.disable_ipv6"),
    )
    assert host_veths == {"reference": "0", "netc": "1"}


def test_only_netc_makes_the_node_forget_the_mac_of_a_reused_address(twins):
    """arp_notify is 1 in the reference's pods, 0 in netc's, and it changes nothing.

    The gratuitous ARP the kernel sends as eth0 comes up leaves while the
    bridge port is still disabled (the port forwards once linkwatch handles
    the carrier event, after rtnl is released), so with the reference the node
    keeps the MAC of the address's previous pod, REACHABLE, for up to 45 s;
    netc deletes that neighbour entry on ADD and DEL.  Another pod stays
    on the bridge, as on any busy node (a bridge losing its last port loses
    its carrier and its neighbour entries); rewinding host-local's round-robin
    pointer reuses the address at once.
    """
    for lab in twins.values():
        lab.build(compiled("minimal"))
    each(twins, lambda lab: lab.attach("minimal", "stay"))
    each(twins, lambda lab: lab.attach("minimal", "old"))
    old = each(twins, lambda lab: lab.address("minimal/old"))
    assert each(twins, lambda lab: lab.ping(lab.node, lab.address("minimal/old"))) == {
        t: True for t in twins
    }
    each(twins, lambda lab: lab.detach("minimal/old"))
    for lab in twins.values():
        (lab.tmp / "ipam" / "minimal" / "last_reserved_ip.0").unlink()
    each(twins, lambda lab: lab.attach("minimal", "new"))
    assert each(twins, lambda lab: lab.address("minimal/new")) == old
    notify = each(
        twins, lambda lab: lab.sysctl("net.ipv4.conf.eth0.arp_notify", where="minimal/new")
    )
    assert notify == {"reference": "1", "netc": "0"}
    assert each(twins, lambda lab: lab.ping(lab.node, lab.address("minimal/new"))) == {
        "reference": False,
        "netc": True,
    }


def test_the_bridge_keeps_its_own_identity(twins):
    """A bridge given its MAC keeps it as pods come and go, with a matching bridge ID."""
    _populate(twins, "minimal")

    def identity(lab: TwinLab) -> dict[str, object]:
        bridge = lab.link("node", "cni0")
        mac = ":".join(f"{int(octet, 16):x}" for octet in bridge["address"].split(":"))
        return {
            "operstate": bridge["operstate"],
            "bridge id is its mac": bridge["linkinfo"]["info_data"]["bridge_id"] == f"8000.{mac}",
        }

    assert each(twins, identity) == {
        t: {"operstate": "UP", "bridge id is its mac": True} for t in twins
    }
