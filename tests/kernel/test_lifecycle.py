"""ADD and DEL are idempotent, DEL is forgiving, a failed ADD leaves nothing."""

import json

import pytest

from compiler.planner.names import AttachmentNames
from runtime.driver import PluginFailed
from runtime.ops.links import LINK_GROUP_BASE
from tests.kernel import networks


def _leftovers(lab, pod, result) -> dict[str, object]:
    host_veth = result["interfaces"][1]["name"]
    state = lab.tmp / "state" / "labnet"
    return {
        "veth": host_veth in lab.run(lab.node, "ip", "-o", "link").stdout,
        "ifb": "nifb" in lab.run(lab.node, "ip", "-o", "link").stdout,
        "reservations": sorted(p.name for p in (lab.tmp / "ipam" / "labnet").glob("10.*")),
        "records": sorted(p.name for p in state.glob("*.json")),
        "attachment locks": sorted(p.name for p in state.glob("*.lock")),
        "dnat": "NETC-DN-" in lab.run(lab.node, "iptables-save", "-t", "nat").stdout,
        "claims": sorted(p.name for p in (lab.tmp / "state" / "hostports").glob("*:*")),
    }


NOTHING = {
    "veth": False,
    "ifb": False,
    "reservations": [],
    "records": [],
    "attachment locks": [],
    "dnat": False,
    "claims": [],
}


def test_repeated_add_returns_the_same_result_and_changes_nothing(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    options = {"ports": ("8080:80",), "bandwidth": "ingress=10M,egress=10M"}
    first = lab.add(conflist, pod, **options)
    before = lab.snapshot()
    assert first["interfaces"][1]["name"] in {link[0] for link in before["links"]}
    second = lab.add(conflist, pod, **options)
    assert second == first
    assert lab.snapshot() == before


def test_repeated_del_succeeds_and_removes_everything(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M,egress=10M")
    assert _leftovers(lab, pod, result) != NOTHING
    lab.delete(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M,egress=10M")
    lab.delete(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M,egress=10M")
    assert _leftovers(lab, pod, result) == NOTHING


def _netns_gone(lab, pod) -> None:
    lab.remove_netns(pod.name)


def _no_cached_result(lab, pod) -> None:
    """libcni then sends no prevResult (and the driver no runtimeConfig on DEL)."""
    (lab.tmp / "cache" / "results" / f"labnet-{pod.container_id}-eth0").unlink()


def _no_record(lab, pod) -> None:
    for record in (lab.tmp / "state" / "labnet").glob("*.json"):
        record.unlink()


@pytest.mark.parametrize("damage", [_netns_gone, _no_cached_result, _no_record])
def test_del_without_netns_prev_result_runtime_config_or_record_cleans_everything(lab, damage):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M,egress=10M")
    damage(lab, pod)
    lab.delete(conflist, pod)
    assert _leftovers(lab, pod, result) == NOTHING


def test_an_add_that_fails_midway_leaves_nothing_behind(lab):
    conflist = lab.network(networks.FULL)
    first, second = lab.pod("a"), lab.pod("b")
    lab.add(conflist, first, ports=("8080:80",))
    before = lab.snapshot()
    files_before = _leftovers(lab, first, {"interfaces": [{}, {"name": "-"}]})
    with pytest.raises(PluginFailed) as failure:
        lab.add(conflist, second, ports=("9090:90", "8080:80"))
    assert failure.value.error["code"] == 103
    assert "8080/tcp" in failure.value.error["msg"]
    assert lab.snapshot() == before
    assert _leftovers(lab, first, {"interfaces": [{}, {"name": "-"}]}) == files_before
    assert "eth0" not in lab.run(second.name, "ip", "-o", "link").stdout


def test_a_failure_in_the_shaping_phase_rolls_back_the_earlier_phases(lab):
    conflist = lab.network(networks.FULL)
    warm = lab.pod("warm")  # node-scoped objects (bridge, NAT chains) exist from now on
    lab.add(conflist, warm)
    lab.delete(conflist, warm)
    pod = lab.pod("p")
    # The pod's ifb name is taken by a device of another kind: the ADD must fail at shaping.
    ifb = AttachmentNames("labnet", pod.container_id, "eth0").ifb
    lab.run(lab.node, "ip", "link", "add", ifb, "type", "bridge")
    before = lab.snapshot()
    with pytest.raises(PluginFailed) as failure:
        lab.add(conflist, pod, ports=("8080:80",), bandwidth="egress=5M")
    assert "not an ifb" in failure.value.error["msg"]
    assert lab.snapshot() == before
    assert not list((lab.tmp / "ipam" / "labnet").glob("10.*"))
    assert not list((lab.tmp / "state" / "labnet").glob("*.json"))


def test_check_passes_then_reports_what_drifted(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M")
    lab.check(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M")
    lab.run(lab.node, "tc", "qdisc", "del", "dev", result["interfaces"][1]["name"], "root")
    lab.run(pod.name, "ip", "route", "del", "default")
    with pytest.raises(PluginFailed) as failure:
        lab.check(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M")
    assert failure.value.error["code"] == 106
    details = failure.value.error["details"]
    assert "tbf on" in details and "route 0.0.0.0/0" in details


def test_gc_removes_attachments_that_are_no_longer_valid(lab):
    conflist = lab.network(networks.FULL)
    keep, drop = lab.pod("keep"), lab.pod("drop")
    kept = lab.add(conflist, keep, ports=("8080:80",))
    dropped = lab.add(conflist, drop, ports=("9090:80",), bandwidth="egress=5M")
    request = _plugin_config(conflist)
    request["cni.dev/valid-attachments"] = [{"containerID": keep.container_id, "ifname": "eth0"}]
    status, output = lab.plugin(_json(request), {"CNI_COMMAND": "GC", "CNI_PATH": "/x"})
    assert (status, output) == (0, None)
    assert _leftovers(lab, drop, dropped)["veth"] is False
    state = _leftovers(lab, keep, kept)
    assert state["veth"] and len(state["reservations"]) == 1 and state["claims"] == ["tcp:8080"]


def test_gc_without_a_valid_list_collects_nothing(lab):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod)
    status, _ = lab.plugin(_json(_plugin_config(conflist)), {"CNI_COMMAND": "GC"})
    assert status == 0
    assert _leftovers(lab, pod, result)["veth"]


def test_status_reports_an_exhausted_range(lab):
    conflist = lab.network(networks.bridge_network(subnets="        subnet 10.77.0.0/30"))
    environment = {"CNI_COMMAND": "STATUS"}
    request = _json(_plugin_config(conflist, "1.1.0"))
    assert lab.plugin(request, environment) == (0, None)
    lab.add(conflist, lab.pod("only"))
    status, error = lab.plugin(request, environment)
    assert status == 1 and error["code"] == 50
    with pytest.raises(PluginFailed) as failure:
        lab.add(conflist, lab.pod("more"))
    assert failure.value.error["code"] == 104


def _plugin_config(conflist, version: str | None = None) -> dict:
    document = json.loads(conflist.read_text())
    config = dict(document["plugins"][0])
    config["name"] = document["name"]
    config["cniVersion"] = version or document["cniVersion"]
    return config


def _json(document) -> str:
    return json.dumps(document)


def test_an_add_after_a_del_interrupted_past_the_ifb_converges_to_one_redirect(lab):
    """The stale redirect to the deleted ifb is replaced, not added to."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod, bandwidth="egress=10M")
    host_veth = result["interfaces"][1]["name"]
    ifb = AttachmentNames("labnet", pod.container_id, "eth0").ifb
    lab.run(lab.node, "ip", "link", "del", ifb)
    lab.add(conflist, pod, bandwidth="egress=10M")
    filters = lab.run(lab.node, "tc", "filter", "show", "dev", host_veth, "ingress").stdout
    assert filters.count("action order 1: mirred") == 1, filters
    assert f"device {ifb})" in filters
    gateway = result["ips"][0]["gateway"]
    assert lab.ping(pod.name, gateway)
    lab.check(conflist, pod, bandwidth="egress=10M")


def test_del_removes_what_the_add_made_whatever_its_runtime_config_says(lab):
    """A DEL claiming no ports and no shaping still removes them."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod, ports=("8080:80",), bandwidth="ingress=10M,egress=10M")
    document = json.loads(conflist.read_text())
    plugin = {
        **document["plugins"][0],
        "name": document["name"],
        "cniVersion": document["cniVersion"],
        "runtimeConfig": {"portMappings": [], "bandwidth": {}},
    }
    environment = {
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": pod.netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
    }
    status, _ = lab.plugin(json.dumps(plugin), environment)
    assert status == 0
    assert _leftovers(lab, pod, result) == NOTHING


def _groups(lab, netns: str) -> dict[str, tuple[int, str]]:
    """Each link of a namespace: its index and its group, as `ip` reports them."""
    links = json.loads(lab.run(netns, "ip", "-j", "link", "show").stdout)
    return {link["ifname"]: (link["ifindex"], str(link.get("group", "default"))) for link in links}


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "made-before-groups"])
def test_del_removes_the_pods_links_in_one_group_and_no_other_link(lab, grouped):
    """The ifb joins its veth's link group, named for the veth's index; a DEL deletes that
    group when both still carry it (one unregister batch), each link alone otherwise."""
    conflist = lab.network(networks.FULL)
    pod, neighbour = lab.pod("p"), lab.pod("q")
    result = lab.add(conflist, pod, bandwidth="ingress=10M,egress=10M")
    lab.add(conflist, neighbour, bandwidth="ingress=10M,egress=10M")
    host_veth = result["interfaces"][1]["name"]
    ifb = AttachmentNames("labnet", pod.container_id, "eth0").ifb
    groups = _groups(lab, lab.node)
    index = groups[host_veth][0]
    assert groups[host_veth][1] == groups[ifb][1] == str(LINK_GROUP_BASE + index)
    if not grouped:
        lab.run(lab.node, "ip", "link", "set", ifb, "group", "default")
    lab.run(
        lab.node,
        "ip",
        "link",
        "add",
        "labother",
        "group",
        str(LINK_GROUP_BASE + 1),
        "type",
        "bridge",
    )
    before = set(_groups(lab, lab.node))
    lab.delete(conflist, pod, bandwidth="ingress=10M,egress=10M")
    assert before - set(_groups(lab, lab.node)) == {host_veth, ifb}
    assert "eth0" not in _groups(lab, pod.name)
    assert "eth0" in _groups(lab, neighbour.name)
