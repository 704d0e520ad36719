"""Host ports carry real TCP and UDP traffic, from every direction that matters."""

import pytest

from runtime.driver import PluginFailed
from tests.kernel import networks
from tests.kernel.lab import CLIENT_IP, CLIENT_IP6, NODE_IP, NODE_IP6


@pytest.fixture
def hostport_lab(lab):
    """A pod serving TCP and UDP on port 80, mapped to host port 8080 (both protocols)."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("web")
    result = lab.add(conflist, pod, ports=("8080:80/tcp", "8080:80/udp"))
    lab.serve(pod.name, "tcp", 80, "web")
    lab.serve(pod.name, "udp", 80, "web")
    lab.conflist, lab.web, lab.web_ip = conflist, pod, result["ips"][0]["address"].split("/")[0]
    return lab


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_from_another_host_to_the_node_address(hostport_lab, protocol):
    lab = hostport_lab
    assert lab.ask(lab.client, protocol, NODE_IP, 8080) == f"web {CLIENT_IP}"


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_from_the_node_to_localhost_and_to_its_own_address(hostport_lab, protocol):
    lab = hostport_lab
    assert lab.ask(lab.node, protocol, "127.0.0.1", 8080) == "web 10.77.0.1"
    assert lab.ask(lab.node, protocol, NODE_IP, 8080) == f"web {NODE_IP}"


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_hairpin_a_pod_reaches_itself_and_another_pod_through_the_node(hostport_lab, protocol):
    lab = hostport_lab
    other = lab.pod("other")
    lab.add(lab.conflist, other)
    assert lab.ask(lab.web.name, protocol, NODE_IP, 8080) == "web 10.77.0.1"
    assert lab.ask(other.name, protocol, NODE_IP, 8080) == "web 10.77.0.1"


def test_unmapped_ports_are_not_forwarded(hostport_lab):
    lab = hostport_lab
    assert lab.ask(lab.client, "tcp", NODE_IP, 8081) is None


def test_host_ip_restricts_a_mapping_to_one_node_address(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("web")
    lab.add(conflist, pod, ports=(f"8080:80@{NODE_IP}",))
    lab.serve(pod.name, "tcp", 80, "web")
    assert lab.ask(lab.client, "tcp", NODE_IP, 8080) == f"web {CLIENT_IP}"
    assert lab.ask(lab.node, "tcp", "127.0.0.1", 8080) is None
    assert lab.ask(lab.node, "tcp", "10.77.0.1", 8080) is None


def test_after_del_the_port_is_closed_and_no_rule_of_the_pod_remains(hostport_lab):
    lab = hostport_lab
    lab.delete(lab.conflist, lab.web)
    nat = lab.run(lab.node, "iptables-save", "-t", "nat").stdout
    assert lab.web.container_id not in nat and "NETC-DN-" not in nat
    assert lab.ask(lab.client, "tcp", NODE_IP, 8080) is None


def test_a_second_pod_cannot_take_a_host_port_that_is_in_use(hostport_lab):
    lab = hostport_lab
    with pytest.raises(PluginFailed) as failure:
        lab.add(lab.conflist, lab.pod("thief"), ports=("8080:8080",))
    assert failure.value.error["code"] == 103
    assert lab.web.container_id in failure.value.error["msg"]
    assert lab.ask(lab.client, "tcp", NODE_IP, 8080) == f"web {CLIENT_IP}"


def test_stale_udp_conntrack_entries_are_flushed_on_del_and_add(lab):
    conflist = lab.network(networks.FULL)
    first, second = lab.pod("first"), lab.pod("second")
    lab.add(conflist, first, ports=("5353:53/udp",))
    lab.serve(first.name, "udp", 53, "first")
    assert lab.ask(lab.client, "udp", NODE_IP, 5353, source_port=40053) == f"first {CLIENT_IP}"
    lab.delete(conflist, first)
    listing = lab.run(
        lab.node, "conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353", check=False
    )
    assert "dport=5353" not in listing.stdout
    lab.add(conflist, second, ports=("5353:53/udp",))
    lab.serve(second.name, "udp", 53, "second")
    answer = lab.ask(lab.client, "udp", NODE_IP, 5353, source_port=40053)
    assert answer == f"second {CLIENT_IP}"


def test_policy_refuses_a_denied_port_with_the_rule_in_the_message(lab):
    policy = networks.bridge_network(extra="    hostport { deny 22 }\n")
    conflist = lab.network(policy)
    with pytest.raises(PluginFailed) as failure:
        lab.add(conflist, lab.pod("p"), ports=("22:22",))
    assert failure.value.error["code"] == 101
    # The rule is named by its statement path, which no edit elsewhere in the file changes.
    assert "refused by `deny 22` (labnet › hostport › deny 22)" in failure.value.error["msg"]


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_ipv6_host_ports_of_a_dual_stack_pod(lab, protocol):
    dual = networks.bridge_network(
        "gateway; masquerade",
        "        subnet 10.77.0.0/24\n        subnet fd00:77::/64\n"
        "        route 0.0.0.0/0\n        route ::/0",
        "    hostport\n",
    )
    conflist = lab.network(dual)
    pod = lab.pod("web")
    lab.add(conflist, pod, ports=(f"8080:80/{protocol}",))
    lab.serve(pod.name, protocol, 80, "web")
    assert lab.ask(lab.client, protocol, NODE_IP6, 8080) == f"web {CLIENT_IP6}"
    assert lab.ask(lab.client, protocol, NODE_IP, 8080) == f"web {CLIENT_IP}"
