"""The stock tuning and firewall plugins chained after netc-cni, run as libcni does.

runtime.driver runs the conflist netc builds for its own plugin the way
libcni runs any: netc-cni, then each chained plugin with the result before it
as `prevResult`; CHECK in order and DEL in reverse, each plugin given the
cached final result.  The plugins run in the lab's node namespace, so the
firewall's chains live and die there.
"""

import json

import pytest

from runtime.driver import PluginFailed
from tests.kernel import chained, networks

NETWORK = networks.bridge_network(
    "gateway; masquerade",
    "        subnet 10.77.0.0/24\n        subnet fd00:77::/64\n"
    "        route 0.0.0.0/0\n        route ::/0\n"
    "        dns { nameservers 10.96.0.10; search svc.cluster.local }",
    extra=chained.STATEMENTS,
)


def _cache(lab, pod):
    """libcni's cached result of the pod's attachment (the driver keeps its layout)."""
    return lab.tmp / "cache" / "results" / f"labnet-{pod.container_id}-eth0"


def _addresses(result) -> list[str]:
    return [ip["address"].split("/")[0] for ip in result["ips"]]


def test_tuning_and_firewall_act_after_netc_cni_and_del_takes_their_rules_out(lab):
    conflist = lab.network(NETWORK)
    assert [p["type"] for p in json.loads(conflist.read_text())["plugins"]] == [
        "netc-cni",
        "tuning",
        "firewall",
    ]
    pod = lab.pod("p")
    node_before = chained.sysctls(lab, lab.node)
    assert chained.sysctls(lab, pod.name) != chained.SYSCTLS

    result = lab.add(conflist, pod)
    addresses = _addresses(result)
    assert len(addresses) == 2
    assert chained.sysctls(lab, pod.name) == chained.SYSCTLS
    assert chained.sysctls(lab, lab.node) == node_before  # the pod's namespace only
    for address in addresses:
        assert len(chained.firewall_rules(lab, lab.node, address)) == 2, address
    lab.check(conflist, pod)

    lab.delete(conflist, pod)
    assert {a: chained.firewall_rules(lab, lab.node, a) for a in addresses} == {
        a: [] for a in addresses
    }
    assert not _cache(lab, pod).exists()
    assert "veth" not in lab.run(lab.node, "ip", "-o", "link").stdout
    lab.delete(conflist, pod)  # containerd's second DEL, without a cached result


def test_the_chained_plugins_get_netc_cnis_whole_result(lab):
    """tuning and firewall read their prevResult into Go's result type and print it back:
    what comes out of the chain is netc-cni's result with nothing lost."""
    conflist = lab.network(NETWORK)
    document = json.loads(conflist.read_text())
    alone = lab.tmp / "netc-only.conflist"
    alone.write_text(json.dumps({**document, "plugins": document["plugins"][:1]}))
    pod = lab.pod("p")
    own = lab.add(alone, pod)
    through_the_chain = lab.add(conflist, pod)  # netc-cni's ADD repeated: the same result

    assert through_the_chain == own
    interfaces = own["interfaces"]
    assert [i.get("sandbox") for i in interfaces] == [None, None, pod.netns]
    assert all(i["mac"] for i in interfaces)
    assert {interfaces[ip["interface"]]["name"] for ip in own["ips"]} == {"eth0"}
    assert {ip["gateway"] for ip in own["ips"]} == {"10.77.0.1", "fd00:77::1"}
    assert own["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    assert own["dns"] == {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
    lab.delete(conflist, pod)


def test_check_runs_the_chain_and_each_plugin_finds_what_it_made(lab):
    conflist = lab.network(NETWORK)
    pod = lab.pod("p")
    address = _addresses(lab.add(conflist, pod))[0]
    lab.check(conflist, pod)

    rule = ("-s", f"{address}/32", "-j", "ACCEPT")
    lab.run(lab.node, "iptables", "-D", "CNI-FORWARD", *rule)
    with pytest.raises(PluginFailed, match="firewall CHECK"):
        lab.check(conflist, pod)
    lab.run(lab.node, "iptables", "-A", "CNI-FORWARD", *rule)
    lab.check(conflist, pod)

    lab.run(pod.name, "sysctl", "-qw", "net.core.somaxconn=4096")
    with pytest.raises(PluginFailed, match="tuning CHECK"):
        lab.check(conflist, pod)
    lab.delete(conflist, pod)


def test_netc_cni_check_finds_a_cached_result_that_is_not_its_own(lab):
    """The runtime's cache says the pod has an address netc did not reserve for it."""
    conflist = lab.network(NETWORK)
    pod = lab.pod("p")
    result = lab.add(conflist, pod)
    held = result["ips"][0]["address"]
    entry = json.loads(_cache(lab, pod).read_text())
    entry["result"]["ips"][0]["address"] = "10.77.0.200/24"
    _cache(lab, pod).write_text(json.dumps(entry))

    with pytest.raises(PluginFailed, match="netc-cni CHECK") as failure:
        lab.check(conflist, pod)
    assert failure.value.error["code"] == 106
    assert failure.value.error["details"].splitlines() == [
        f"the runtime's cached result lacks {held}, which the ADD reserved",
        "the runtime's cached result lists 10.77.0.200/24, which this attachment does not hold",
    ]
    lab.delete(conflist, pod)


def test_del_through_the_chain_succeeds_when_the_pods_namespace_is_gone(lab):
    conflist = lab.network(NETWORK)
    pod = lab.pod("p")
    addresses = _addresses(lab.add(conflist, pod))
    lab.remove_netns(pod.name)
    lab.delete(conflist, pod)
    assert [chained.firewall_rules(lab, lab.node, a) for a in addresses] == [[], []]
    assert "veth" not in lab.run(lab.node, "ip", "-o", "link").stdout
