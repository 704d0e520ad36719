"""`netc apply --node` over a cluster's life -- repeated, drifting, losing and gaining
nodes -- never touching what it does not own.

Each test builds its own dual-stack cluster (they change it), per routing
mode.  Before the first apply, node-a gets objects netc must never touch:
a veth pair with a permanent neighbour, a route inside the pod CIDR of
another protocol (IPv4 and IPv6), a route of netc's own protocol number
outside the pod CIDRs, and a VXLAN device of somebody else's.
"""

from __future__ import annotations

import pytest

from tests.cluster.sim import NODE_A, NODE_B, NODE_C, NODE_D, NODE_E, POD_PORT, SimCluster, sh

MODES = ("host-gw", "vxlan", "mixed")


@pytest.fixture(params=MODES)
def cluster(request, tmp_path, bin_dir):
    mode = request.param
    nodes = (NODE_A, NODE_B, NODE_C) + ((NODE_D,) if mode != "host-gw" else ())
    with SimCluster(tmp_path, bin_dir, mode, True, nodes) as sim:
        _add_foreign_objects(sim)
        before = _foreign_objects(sim)
        sim.apply_all()
        yield sim
        assert _foreign_objects(sim) == before, "an apply touched what netc does not own"


def _add_foreign_objects(sim: SimCluster) -> None:
    node = sim.ns(NODE_A)
    for command in (
        "link add keep0 type veth peer name keep1",
        "link set keep0 up",
        "link set keep1 up",
        "route add 10.244.200.0/24 dev keep0 proto static",
        "route add 203.0.113.0/24 dev keep0 proto 78",
        "-6 route add fd00:10:244:ff::/64 dev keep0 proto static",
        "neigh add 10.244.200.9 lladdr 02:00:00:00:00:09 dev keep0 nud permanent",
        f"link add vx-other type vxlan id 99 dstport 4789 local {NODE_A.address} nolearning",
        "link set vx-other alias someone-else",
    ):
        sh("ip", "-n", node, *command.split())


def _foreign_objects(sim: SimCluster) -> dict[str, object]:
    links = {
        link["ifname"]: (link.get("ifalias"), link["mtu"], link["address"])
        for link in sim.ip_json(NODE_A, "-d", "link", "show")
        if link["ifname"] in ("keep0", "keep1", "vx-other")
    }
    routes = sorted(
        (r["dst"], r.get("dev"), r.get("protocol"))
        for r in sim.routes(NODE_A)
        if r.get("dev") == "keep0"
    )
    neighbours = [
        (n["dst"], n.get("lladdr"), n.get("state"))
        for n in sim.ip_json(NODE_A, "neigh", "show", "dev", "keep0")
    ]
    return {"links": links, "routes": routes, "neighbours": neighbours}


def _lines(done) -> list[str]:
    return done.stdout.splitlines()


def test_a_second_apply_changes_nothing_and_plan_live_follows_a_route_deleted_by_hand(cluster):
    again = cluster.apply_all()
    assert {name: (d.returncode, d.stdout) for name, d in again.items()} == {
        name: (0, "") for name in again
    }
    assert cluster.plan_live(NODE_A).returncode == 0, cluster.pending(cluster.plan_live(NODE_A))
    far = cluster.listed[-1]
    lost = str(far.subnet(4))
    sh("ip", "-n", cluster.ns(NODE_A), "route", "del", lost)
    expected = [f"route to {far.name}'s pods {lost} via"]
    if cluster.mode != "host-gw":
        sh("bridge", "-n", cluster.ns(NODE_A), "fdb", "del", cluster.mac(far), "dev", "netc.1")
        expected.insert(0, f"forward frames for {cluster.mac(far)} to {far.address}")
    drift = cluster.plan_live(NODE_A)
    assert drift.returncode == 2, drift.stdout
    pending = cluster.pending(drift)
    assert len(pending) == len(expected), pending
    assert all(
        p.startswith(e) and p.endswith(": create")
        for p, e in zip(sorted(pending), sorted(expected), strict=True)
    ), pending
    repair = cluster.apply(NODE_A)
    assert repair.returncode == 2, repair.stderr
    assert len(_lines(repair)) == len(expected), repair.stdout
    assert all(
        line.startswith(f"+ {e}")
        for line, e in zip(sorted(_lines(repair)), sorted(expected), strict=True)
    ), repair.stdout
    assert cluster.plan_live(NODE_A).returncode == 0


def test_a_removed_node_leaves_nothing_behind_and_an_added_node_moves_no_other_subnet(cluster):
    remaining = [n for n in cluster.listed if n is not NODE_C]
    conflists = cluster.conflists(remaining)
    gone = (
        {str(NODE_C.subnet(f)) for f in (4, 6)}
        | {str(NODE_C.subnet(f).network_address) for f in (4, 6)}
        | {NODE_C.address, NODE_C.address6, cluster.mac(NODE_C)}
    )
    assert all(_towards(cluster, n, gone) for n in remaining), "nothing to remove to begin with"
    cluster.listed.remove(NODE_C)
    (prune,) = cluster.pending(cluster.plan_live(NODE_A))
    assert prune.startswith(
        f"remove netc's routes, entries and devices of cluster sim the plan "
        f"does not have: different would remove route {NODE_C.subnet(4)}"
    ), prune
    for name, done in cluster.apply_all(remaining).items():
        assert done.returncode == 2 and _lines(done), f"{name}: {done.stderr}"
        assert all(
            line.startswith("- ") and any(g in line for g in gone) for line in _lines(done)
        ), f"{name} removed more than node-c's:\n{done.stdout}"
        assert not _towards(cluster, cluster.nodes[name], gone), name
    cluster.add_node(NODE_E)
    cluster.listed.append(NODE_E)
    added = cluster.apply_all(remaining)
    for name, done in added.items():
        assert done.returncode == 2
        assert all("node-e" in line for line in _lines(done)), f"{name}:\n{done.stdout}"
    assert cluster.apply(NODE_E).returncode == 2
    assert cluster.conflists(remaining) == conflists
    cluster.add_pods([NODE_A, NODE_E])
    pod_a, pod_e = cluster.pods[NODE_A.name], cluster.pods[NODE_E.name]
    answers = cluster.ask_all(
        [(pod_a.pod.name, pod_e.addresses[f], POD_PORT) for f in (4, 6)]
        + [(pod_e.pod.name, pod_a.addresses[f], POD_PORT) for f in (4, 6)]
    )
    assert answers == [f"node-e {pod_a.addresses[f]}" for f in (4, 6)] + [
        f"node-a {pod_e.addresses[f]}" for f in (4, 6)
    ]


def _towards(cluster: SimCluster, node, gone: set[str]) -> list[object]:
    """Routes, permanent neighbours and FDB entries of a node naming anything of a removed node.

    The underlay's own ARP and NDP cache is the kernel's, not netc's: only
    permanent neighbour entries count.
    """
    routes = [r for r in cluster.routes(node) if r["dst"] in gone or r.get("gateway") in gone]
    neighbours = [
        n
        for n in cluster.ip_json(node, "neigh", "show", "nud", "permanent")
        if n["dst"] in gone or n.get("lladdr") in gone
    ]
    fdb = [e for e in cluster.fdb(node) if e.get("mac") in gone or e.get("dst") in gone]
    return routes + neighbours + fdb
