"""`netc status` sees what a node holds, `netc gc` collects what leaked.

Leaks are made on purpose in the lab's node: an ADD whose record is gone (as
if killed before its record was written back), a pod whose namespace went
away without DEL, a stale host-port claim; and kernel objects netc did not
make are left alone.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from compiler.planner.names import AttachmentNames
from runtime.cli import main
from tests.kernel import networks

PORTS = ("8080:80",)


def _netc(lab, *args):
    return CliRunner().invoke(main, [*args, str(lab.tmp / "lab.netdsl"), "--node-netns", lab.node])


def _status(lab):
    result = _netc(lab, "status", "--format", "json")
    assert result.exit_code in (0, 1), result.output
    (state,) = json.loads(result.stdout)["networks"]
    return result.exit_code, state


def _kinds(state):
    return sorted(p["kind"] for p in state["problems"])


def test_a_healthy_node_is_consistent_and_lists_its_attachments(lab):
    conflist = lab.network(networks.FULL)
    pods = [lab.pod("a"), lab.pod("b")]
    lab.add(conflist, pods[0], ports=PORTS, bandwidth="ingress=10M")
    lab.add(conflist, pods[1])
    code, state = _status(lab)
    assert code == 0, state["problems"]
    assert sorted(a["container_id"] for a in state["attachments"]) == sorted(
        p.container_id for p in pods
    )
    with_port = next(a for a in state["attachments"] if a["ports"])
    assert with_port["ports"] == ["8080->80/tcp"] and with_port["rates"] == {"ingress": 10_000_000}
    assert len(state["reservations"]) == 2 and list(state["claims"]) == ["tcp:8080"]
    text = _netc(lab, "status")
    assert text.exit_code == 0 and text.stdout.endswith("consistent\n")


def test_leaks_are_reported_then_collected_and_the_living_pod_is_kept(lab):
    conflist = lab.network(networks.FULL)
    alive, killed, vanished = lab.pod("alive"), lab.pod("killed"), lab.pod("gone")
    lab.add(conflist, alive, ports=("8081:80",))
    lab.add(conflist, killed, ports=PORTS, bandwidth="egress=5M")
    lab.add(conflist, vanished)
    names = AttachmentNames("labnet", killed.container_id, "eth0")
    state_dir = lab.tmp / "state" / "labnet"
    (state_dir / f"{names.key}.json").unlink()
    lab.remove_netns(vanished.name)
    code, state = _status(lab)
    assert code == 1
    assert _kinds(state) == [
        "claim without record",
        "record without namespace",
        "reservation without record",
    ]
    dry = _netc(lab, "gc", "--alive", alive.container_id)
    assert dry.exit_code == 0 and dry.stdout.count("would collect") == 2
    assert _status(lab)[0] == 1, "a dry run collected something"
    done = _netc(lab, "gc", "--alive", alive.container_id, "--apply")
    assert done.exit_code == 0, done.output
    assert f"collected {killed.container_id}/eth0" in done.stdout
    code, state = _status(lab)
    assert code == 0, state["problems"]
    assert [a["container_id"] for a in state["attachments"]] == [alive.container_id]
    links = lab.run(lab.node, "ip", "-o", "link").stdout
    assert names.host_veth not in links and names.ifb not in links
    assert names.dnat_chain not in lab.run(lab.node, "iptables-save", "-t", "nat").stdout


def test_gc_never_guesses_which_containers_are_alive(lab):
    lab.network(networks.BRIDGE)
    result = _netc(lab, "gc", "--apply")
    assert result.exit_code == 2
    assert "which containers are alive" in result.output


def test_gc_says_when_there_is_nothing_to_collect(lab):
    """Silence read as "did it run?"."""
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("a")
    lab.add(conflist, pod)
    for extra in ((), ("--apply",)):
        result = _netc(lab, "gc", "--alive", pod.container_id, *extra)
        assert result.exit_code == 0, result.output
        assert result.stdout == "nothing to collect on labnet\n"


def test_status_text_gives_rates_as_quantities(lab):
    conflist = lab.network(networks.FULL)
    lab.add(conflist, lab.pod("a"), bandwidth="ingress=10M,egress=1500k")
    text = _netc(lab, "status")
    assert text.exit_code == 0, text.output
    assert "ingress 10M egress 1500k" in text.stdout, text.stdout


OTHER = """
network othernet {
    state-dir "{state}"
    bridge nc-br1 { gateway }
    ipam { subnet 10.78.0.0/24; data-dir "{data}" }
    hostport
}
"""


def test_status_reports_only_what_the_network_owns_and_gc_collects_none_of_it(lab):
    """Another network's pods are not this network's leaks; a link on this network's bridge
    with netc's name that nothing explains is, and no automatic remedy is claimed."""
    theirs = lab.network(OTHER)
    ours = lab.network(networks.BRIDGE)  # lab.netdsl: labnet alone
    lab.add(theirs, lab.pod("theirs"), ports=PORTS)
    pod = lab.pod("ours")
    lab.add(ours, pod)
    lab.run(
        lab.node, "ip", "link", "add", "vethdeadbeef000", "type", "veth", "peer", "name", "other0"
    )
    lab.run(
        lab.node, "ip", "link", "add", "vethfeedface000", "type", "veth", "peer", "name", "other1"
    )
    lab.run(lab.node, "ip", "link", "set", "vethfeedface000", "master", "nc-br0")
    lab.run(lab.node, "ip", "link", "add", "mine0", "type", "bridge")
    code, state = _status(lab)
    assert code == 1
    assert [(p["kind"], p["subject"]) for p in state["problems"]] == [
        ("link without record", "labnet vethfeedface000")
    ]
    assert state["problems"][0]["remedy"].startswith("delete it by hand")
    _netc(lab, "gc", "--alive", pod.container_id, "--apply")
    links = lab.run(lab.node, "ip", "-o", "link").stdout
    assert "vethfeedface000" in links and "vethdeadbeef000" in links


def test_a_node_scoped_object_that_differs_from_the_plan_is_reported(lab):
    conflist = lab.network(networks.BRIDGE)
    lab.add(conflist, lab.pod("a"))
    lab.run(lab.node, "ip", "link", "set", "nc-br0", "down")
    code, state = _status(lab)
    assert code == 1
    assert "node object differs" in _kinds(state)


def test_a_device_of_the_bridges_name_that_is_no_bridge_is_reported_as_blocking(lab):
    """What netc apply would refuse before any change, status names as blocking."""
    lab.network(networks.BRIDGE)
    lab.run(lab.node, "ip", "link", "add", "nc-br0", "type", "veth", "peer", "name", "nc-br0p")
    code, state = _status(lab)
    assert code == 1
    (problem,) = [p for p in state["problems"] if p["kind"] == "node object blocked"]
    assert problem["detail"].startswith(
        "nc-br0 is a veth, not a bridge: netc never changes "
        "a link it does not own; remove it (ip link del nc-br0)"
    )
    assert problem["remedy"].startswith("netc apply refuses until it is gone")
