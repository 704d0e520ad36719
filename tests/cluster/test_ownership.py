"""What `netc apply --node` refuses, recreates, repairs and removes -- and what it
never touches.

A cluster of three nodes on one underlay, no pods: only node-a's kernel is
looked at.
"""

from __future__ import annotations

import json

import pytest

from tests.cluster.sim import NODE_A, NODE_B, NODE_C, SimCluster, sh

DEVICE = "netc.1"


@pytest.fixture
def make(tmp_path, bin_dir):
    """A cluster of the routing mode asked for, removed after the test."""
    made = []

    def cluster(mode: str) -> SimCluster:
        made.append(SimCluster(tmp_path, bin_dir, mode, False, (NODE_A, NODE_B, NODE_C)))
        return made[-1]

    yield cluster
    for sim in made:
        sim.close()


def _link(sim: SimCluster, name: str) -> dict | None:
    found = [link for link in sim.ip_json(NODE_A, "-d", "link", "show") if link["ifname"] == name]
    return found[0] if found else None


def _ip(sim: SimCluster, command: str) -> None:
    sh("ip", "-n", sim.ns(NODE_A), *command.split())


@pytest.mark.parametrize(
    "squatter",
    [
        "type veth peer name netc-peer",
        "type vxlan id 1 dstport 8472 local 198.18.10.11 nolearning",
    ],
)
def test_a_link_of_the_devices_name_that_netc_does_not_own_is_refused_and_left_alone(
    make, squatter
):
    sim = make("vxlan")
    _ip(sim, f"link add {DEVICE} {squatter}")
    before = _link(sim, DEVICE)
    done = sim.apply(NODE_A)
    assert done.returncode == 1
    assert "netc never changes links it does not own" in done.stderr, done.stderr
    assert "refused; nothing was changed" in done.stderr and not done.stdout
    assert _link(sim, DEVICE) == before
    live = sim.plan_live(NODE_A)
    assert live.returncode == 1, live.stderr
    (blocked,) = sim.pending(live, ("blocked",))
    assert blocked.startswith("VXLAN device") and blocked.split(": blocked ")[1] in done.stderr


def test_a_route_in_the_way_of_a_peers_is_refused_and_left_alone(make):
    sim = make("host-gw")
    _ip(sim, "route add 10.244.2.0/24 via 198.18.10.99 proto static")
    done = sim.apply(NODE_A)
    assert done.returncode == 1
    assert (
        "a route to 10.244.2.0/24 that netc does not own is in the way (10.244.2.0/24 via "
        "198.18.10.99 dev eth0 proto static)"
    ) in done.stderr, done.stderr
    assert not done.stdout, "refused before any change"
    (route,) = sim.ip_json(NODE_A, "route", "show", "10.244.2.0/24")
    assert (route["gateway"], route["protocol"]) == ("198.18.10.99", "static")


def test_a_changed_tunnel_recreates_the_device_and_a_changed_mtu_is_repaired_in_place(make):
    sim = make("vxlan")
    sim.apply_all()
    sim.vni = 5
    recreated = sim.apply(NODE_A)
    assert recreated.returncode == 2
    assert "(recreated: vni 1, want 5)" in recreated.stdout.splitlines()[0], recreated.stdout
    link = _link(sim, DEVICE)
    assert link["linkinfo"]["info_data"]["id"] == 5
    assert sim.plan_live(NODE_A).returncode == 0, "the device's routes and entries came back"
    _ip(sim, f"link set {DEVICE} mtu 1400")
    repaired = sim.apply(NODE_A)
    assert repaired.stdout.splitlines() == [
        f"+ VXLAN device {DEVICE} (VNI 5, UDP 8472, from {NODE_A.address}, mtu 1450) "
        "(repaired: mtu 1400, want 1450)"
    ]
    assert _link(sim, DEVICE)["ifindex"] == link["ifindex"]


def test_a_device_whose_creation_was_interrupted_before_its_alias_is_adopted(make):
    sim = make("vxlan")
    _ip(
        sim,
        f"link add {DEVICE} address {sim.mac(NODE_A)} mtu 1450 type vxlan id 1 dstport "
        f"8472 local {NODE_A.address} nolearning",
    )
    index = _link(sim, DEVICE)["ifindex"]
    done = sim.apply(NODE_A, "--format", "json")
    assert done.returncode == 2, done.stderr
    (vxlan,) = [c for c in json.loads(done.stdout)["changes"] if c["kind"] == "link.vxlan"]
    assert vxlan["notes"] == ["repaired: alias None, want netc cluster sim"]
    assert (_link(sim, DEVICE)["ifindex"], _link(sim, DEVICE)["ifalias"]) == (
        index,
        "netc cluster sim",
    )


def test_switching_to_host_gw_removes_netcs_device_and_keeps_anybody_elses(make):
    sim = make("vxlan")
    _ip(sim, f"link add vx-other type vxlan id 7 dstport 4789 local {NODE_A.address} nolearning")
    sim.apply_all()
    sim.mode = "host-gw"
    done = sim.apply(NODE_A)
    assert done.returncode == 2, done.stderr
    assert f"- link {DEVICE} (vxlan, alias 'netc cluster sim')" in done.stdout.splitlines()
    assert _link(sim, DEVICE) is None and _link(sim, "vx-other") is not None
    routes = {r["dst"]: r for r in sim.routes(NODE_A) if r.get("protocol") == "78"}
    assert {dst: (r["gateway"], r["dev"]) for dst, r in routes.items()} == {
        "10.244.2.0/24": (NODE_B.address, "eth0"),
        "10.244.3.0/24": (NODE_C.address, "eth0"),
    }
    assert sim.plan_live(NODE_A).returncode == 0


def test_a_renamed_device_replaces_netcs_old_one_which_holds_its_vni_and_port(make):
    """The kernel would refuse the new device beside the old one; the old one is netc's own
    (the cluster's alias), so it goes first rather than at the prune."""
    sim = make("vxlan")
    sim.apply_all()
    unchanged = sim.source
    sim.source = lambda: unchanged().replace("{ vni ", "{ device netc.2; vni ")
    done = sim.apply(NODE_A)
    assert done.returncode == 2, done.stderr
    assert "(replaced netc.1, which held its VNI and port)" in done.stdout.splitlines()[0]
    assert _link(sim, DEVICE) is None and _link(sim, "netc.2")["ifalias"] == "netc cluster sim"
    assert sim.plan_live(NODE_A).returncode == 0
