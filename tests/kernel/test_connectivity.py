"""Pods on a netc bridge network reach each other, the node and the world."""

import pytest

from compiler.planner.names import AttachmentNames
from tests.kernel import networks
from tests.kernel.lab import CLIENT_IP

NO_MASQUERADE = networks.bridge_network("gateway; hairpin")


def _address(result: dict, family: int = 4) -> str:
    versions = [ip["address"] for ip in result["ips"] if (":" in ip["address"]) == (family == 6)]
    return versions[0].split("/")[0]


def test_pods_reach_each_other_and_the_node(lab):
    conflist = lab.network(networks.BRIDGE)
    first, second = lab.pod("a"), lab.pod("b")
    a, b = lab.add(conflist, first), lab.add(conflist, second)
    assert _address(a) != _address(b)
    assert lab.ping(first.name, _address(b))
    assert lab.ping(second.name, _address(a))
    assert lab.ping(first.name, "10.77.0.1")


def test_pod_reaches_a_host_beyond_the_node_through_masquerade(lab):
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("out")
    lab.add(conflist, pod)
    assert lab.ping(pod.name, CLIENT_IP)


def test_without_masquerade_the_outside_cannot_answer(lab):
    conflist = lab.network(NO_MASQUERADE)
    pod = lab.pod("out")
    lab.add(conflist, pod)
    assert not lab.ping(pod.name, CLIENT_IP)


def test_loopback_is_up_in_the_pod(lab):
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("bare")
    lab.run(pod.name, "ip", "link", "set", "lo", "down")
    assert not lab.ping(pod.name, "127.0.0.1")
    lab.add(conflist, pod)
    assert ",UP," in lab.run(pod.name, "ip", "-o", "link", "show", "lo").stdout
    assert lab.ping(pod.name, "127.0.0.1")


def test_bridged_traffic_is_visible_to_iptables(lab):
    conflist = lab.network(networks.BRIDGE)
    lab.add(conflist, lab.pod("p"))
    value = lab.run(lab.node, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables").stdout
    assert value.strip() == "1"


def test_dual_stack_pods_talk_over_ipv6(lab):
    conflist = lab.network(networks.DUAL_STACK)
    first, second = lab.pod("a"), lab.pod("b")
    a, b = lab.add(conflist, first), lab.add(conflist, second)
    assert {ip["address"].split("/")[1] for ip in a["ips"]} == {"24", "64"}
    assert lab.ping(first.name, _address(b, 6))
    assert lab.ping(second.name, "fd00:77::1")


def test_the_pods_links_on_the_node_carry_no_ipv6_and_its_traffic_still_flows(lab):
    """The host veth and the ifb get IPv6 off before they are up; the pod keeps its own."""
    shaped = networks.DUAL_STACK.replace("    }\n}", "    }\n    bandwidth\n}")
    conflist = lab.network(shaped)
    first, second = lab.pod("a"), lab.pod("b")
    a = lab.add(conflist, first, bandwidth="egress=50M")
    b = lab.add(conflist, second)
    host_veth = a["interfaces"][1]["name"]
    ifb = AttachmentNames("labnet", first.container_id, "eth0").ifb
    for link in (host_veth, ifb):
        setting = f"net.ipv6.conf.{link}.disable_ipv6"
        assert lab.run(lab.node, "sysctl", "-n", setting).stdout.strip() == "1"
        for shown in (("-o", "address", "show"), ("route", "show", "table", "all")):
            assert lab.run(lab.node, "ip", "-6", *shown, "dev", link).stdout == ""
    assert "inet6 fe80::" in lab.run(first.name, "ip", "-6", "address", "show", "eth0").stdout
    assert lab.ping(first.name, _address(b, 6))
    assert lab.ping(second.name, _address(a, 6))
    assert lab.ping(first.name, _address(b, 4))


@pytest.mark.parametrize("mtu", [1400])
def test_mtu_reaches_both_ends_of_the_veth(lab, mtu):
    conflist = lab.network(networks.bridge_network(f"gateway; masquerade; mtu {mtu}"))
    pod = lab.pod("m")
    result = lab.add(conflist, pod)
    host_veth = result["interfaces"][1]["name"]
    assert f"mtu {mtu}" in lab.run(pod.name, "ip", "link", "show", "eth0").stdout
    assert f"mtu {mtu}" in lab.run(lab.node, "ip", "link", "show", host_veth).stdout


def test_a_reused_address_is_reachable_from_the_node_at_once(lab):
    """Another pod stays on the bridge (a bridge losing its last port forgets its neighbours)."""
    conflist = lab.network(networks.BRIDGE)
    lab.add(conflist, lab.pod("stay"))
    first, second = lab.pod("first"), lab.pod("second")
    asked = "IgnoreUnknown=1;IP=10.77.0.42"
    lab.add(conflist, first, args=asked)
    assert lab.ping(lab.node, "10.77.0.42")
    lab.delete(conflist, first)
    lab.add(conflist, second, args=asked)
    assert lab.ping(lab.node, "10.77.0.42")
