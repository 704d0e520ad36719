"""Nodes that ran flannel, and netc taking over from it.

flannel's defaults are netc's (VNI 1, UDP 8472, cni0): `netc apply` on a
node with flannel's devices must refuse before changing anything, naming
what is in the way and the fix -- and say the same in `netc plan --live` and
the agent.  Once flannel's devices are gone (docs/migrating-from-flannel.md),
netc takes over the node, and the pods flannel attached keep their
addresses and their traffic.  flannel's part is made by hand as flanneld and
its plugin make it (tests/cluster/flannel.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from compiler import kubernetes
from runtime import driver
from runtime.agent import Agent, Options
from tests.cluster.flannel import FLANNEL_CONFLIST, FlannelCluster, start_flannel
from tests.cluster.sim import CLIENT, NODE_A, NODE_B, POD_PORT, SimCluster, SimNode, sh
from tests.support import ROOT

GUIDE = ROOT / "docs" / "migrating-from-flannel.md"
FLANNEL_FIX = (
    "it is flannel's: remove flannel first (kubectl delete -f kube-flannel.yml; "
    "ip link del flannel.1), or give the cluster's routing another `vni` or `port`"
)
CLIENT_PORT = 9000


@pytest.fixture
def cluster(tmp_path, bin_dir):
    """Two nodes that run flannel, each with a pod flannel attached; netc not yet applied."""
    with FlannelCluster(tmp_path, bin_dir, (NODE_A, NODE_B)) as sim:
        start_flannel(sim, [NODE_A, NODE_B])
        for node in (NODE_A, NODE_B):
            sim.add_flannel_pod(node)
        yield sim


def node_state(sim: SimCluster, node: SimNode) -> dict[str, Any]:
    """What a node's kernel holds that `netc apply` could change, read with iproute2 and
    iptables-save: links with their settings, addresses, IPv4 routes of every table and IPv6
    routes of the main one, permanent neighbour and FDB entries, the rules of every table,
    forwarding and per-link sysctls.

    Left out is what changes by itself: the timers of bridges and their ports, IPv6
    link-local addresses, learned neighbour and FDB entries, rule counters.
    """
    links = sim.ip_json(node, "-d", "link", "show")
    for info in (link.get("linkinfo", {}) for link in links):
        for data in (info.get("info_data", {}), info.get("info_slave_data", {})):
            for key in [k for k in data if k.endswith("_timer")]:
                del data[key]
    addresses = [
        (a["ifname"], i["local"], i["prefixlen"])
        for a in sim.ip_json(node, "addr", "show")
        for i in a["addr_info"]
        if i.get("scope") != "link"
    ]
    tables = {
        f"{tool}-save": re.sub(r"\[\d+:\d+\]", "", sim.run(sim.ns(node), f"{tool}-save").stdout)
        for tool in ("iptables", "ip6tables")
    }
    sysctls = sim.run(
        sim.ns(node),
        "sysctl",
        "-a",
        "-r",
        r"^net\.(ipv4\.(ip_forward|conf\.)|ipv6\.conf\..*\.forwarding|bridge\.)",
    ).stdout
    return {
        "links": links,
        "addresses": addresses,
        "routes": [
            *sim.ip_json(node, "-4", "route", "show", "table", "all"),
            *sim.ip_json(node, "-6", "route", "show"),
        ],
        "neighbours": sim.ip_json(node, "neigh", "show", "nud", "permanent"),
        "fdb": [
            e
            for e in json.loads(sh("bridge", "-n", sim.ns(node), "-j", "fdb", "show").stdout)
            if e.get("state") in ("permanent", "static")
        ],
        "rules": {
            name: [line for line in text.splitlines() if not line.startswith("#")]
            for name, text in tables.items()
        },
        "sysctls": sysctls.splitlines(),
    }


def _agent(sim: SimCluster, tmp_path) -> Agent:
    compilation = sim.compiled(NODE_A)
    config = tmp_path / "netc.json"
    config.write_text(kubernetes.render_config(compilation.clusters, compilation.networks))
    return Agent(
        Options(
            str(config),
            NODE_A.name,
            str(tmp_path / "net.d"),
            str(tmp_path / "bin"),
            str(tmp_path / "cni.sock"),
            health_port=None,
            node_netns=sim.ns(NODE_A),
        )
    )


def test_apply_on_a_node_that_runs_flannel_refuses_before_any_change(cluster, tmp_path):
    """The refusal names flannel.1, the kernel's rule and the fix, and flannel's routes in
    the way; the node's kernel is exactly as it was, and the live plan and the agent say the
    same words."""
    before = node_state(cluster, NODE_A)
    done = cluster.apply(NODE_A)
    assert done.returncode == 1 and not done.stdout, done.stdout
    assert (
        "VXLAN device netc.1 (VNI 1, UDP 8472, from 198.18.10.11, mtu 1450): flannel.1 "
        "(VXLAN 1, UDP port 8472) is in the way: the kernel refuses a second VXLAN device "
        f"with VNI 1 on UDP port 8472; {FLANNEL_FIX}"
    ) in done.stderr, done.stderr
    assert (
        "a route to 10.244.2.0/24 that netc does not own is in the way (10.244.2.0/24 via "
        "10.244.2.0 dev flannel.1 onlink proto boot)"
    ) in done.stderr
    assert "refused before any change: 2 operations of the plan are blocked" in done.stderr
    assert node_state(cluster, NODE_A) == before

    live = cluster.plan_live(NODE_A)
    assert live.returncode == 1, live.stderr
    assert "apply would refuse: 2 operations are blocked" in live.stderr
    blocked = cluster.pending(live, ("blocked",))
    assert [line.split(": blocked ")[0] for line in blocked] == [
        "VXLAN device netc.1 (VNI 1, UDP 8472, from 198.18.10.11, mtu 1450)",
        "route to node-b's pods 10.244.2.0/24 via 10.244.2.0 (VXLAN on netc.1)",
    ]
    assert all(line.split(": blocked ")[1] in done.stderr for line in blocked), blocked
    text = cluster.netc(
        "plan",
        str(cluster.source_file(NODE_A)),
        "--node",
        NODE_A.name,
        "--live",
        "--node-netns",
        cluster.ns(NODE_A),
    ).stdout
    assert re.search(
        r"^ +\d+ ! VXLAN device netc\.1 .*\n +flannel\.1 \(VXLAN 1, UDP port 8472\) "
        "is in the way",
        text,
        re.M,
    ), text
    assert "in place, 2 blocked -- apply refuses until what is in their way is gone." in text
    assert text.endswith("Legend: + to create   = in place   ~ different   ! blocked\n")

    agent = _agent(cluster, tmp_path)
    agent.converge()
    assert not agent.ready and FLANNEL_FIX in agent.problem, agent.problem
    assert not (tmp_path / "net.d").exists(), "a conflist was written by a refused converge"
    assert node_state(cluster, NODE_A) == before


def test_a_vxlan_device_of_another_kind_holding_the_port_blocks_apply_too(tmp_path, bin_dir):
    """An external (collect-metadata) device up on UDP 8472 -- Cilium's tunnel device is
    one -- shares no VNI with netc's, but the kernel lets only one of the two hold the port."""
    with SimCluster(tmp_path, bin_dir, "vxlan", False, (NODE_A, NODE_B)) as sim:
        sh(
            "ip",
            "-n",
            sim.ns(NODE_A),
            "link",
            "add",
            "vx-external",
            "type",
            "vxlan",
            "external",
            "dstport",
            "8472",
        )
        sh("ip", "-n", sim.ns(NODE_A), "link", "set", "vx-external", "up")
        before = node_state(sim, NODE_A)
        done = sim.apply(NODE_A)
        assert done.returncode == 1
        assert (
            "vx-external (VXLAN 0, UDP port 8472, external) holds UDP port 8472 open for "
            "another kind of VXLAN device: netc's could not come up; remove it (ip link del "
            "vx-external) if nothing uses it, or give the cluster's routing another "
            "`port`"
        ) in done.stderr, done.stderr
        assert node_state(sim, NODE_A) == before
        sh("ip", "-n", sim.ns(NODE_A), "link", "set", "vx-external", "down")
        assert sim.apply(NODE_A).returncode == 2, "a device that is down holds no port"


def test_another_vni_lets_netcs_device_live_beside_flannels(tmp_path, bin_dir):
    """The other fix the refusal offers: flannel.1 stays, untouched, beside netc.1 on VNI 2."""
    with SimCluster(tmp_path, bin_dir, "vxlan", False, (NODE_A, NODE_B)) as sim:
        sh(
            "ip",
            "-n",
            sim.ns(NODE_A),
            "link",
            "add",
            "flannel.1",
            "type",
            "vxlan",
            "id",
            "1",
            "dstport",
            "8472",
            "local",
            NODE_A.address,
            "dev",
            "eth0",
            "nolearning",
        )
        (flannel,) = sim.ip_json(NODE_A, "-d", "link", "show", "flannel.1")
        assert sim.apply(NODE_A).returncode == 1
        sim.vni = 2
        done = sim.apply(NODE_A)
        assert done.returncode == 2, done.stderr
        (device,) = sim.ip_json(NODE_A, "-d", "link", "show", "netc.1")
        assert device["linkinfo"]["info_data"]["id"] == 2
        assert sim.ip_json(NODE_A, "-d", "link", "show", "flannel.1") == [flannel]


CLEANUP = [
    "ip link del flannel.1",
    'iptables -t nat -D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    "iptables -t nat -F FLANNEL-POSTRTG",
    "iptables -t nat -X FLANNEL-POSTRTG",
    'iptables -t filter -D FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
    "iptables -t filter -F FLANNEL-FWD",
    "iptables -t filter -X FLANNEL-FWD",
]
"""What the guide has an admin run on each node once flannel's DaemonSet is deleted (besides
removing its conflist, which these tests never wrote to the host)."""


def test_the_guide_gives_the_cleanup_these_tests_run():
    lines = [line.strip() for line in GUIDE.read_text().splitlines()]
    start = lines.index(CLEANUP[0])
    assert lines[start : start + len(CLEANUP)] == CLEANUP, "docs/migrating-from-flannel.md"


def test_once_flannel_is_gone_netc_takes_over_and_flannels_pods_keep_their_addresses(
    cluster, tmp_path
):
    """The migration the guide describes, on two nodes: each node's subnet kept, so the pods
    flannel attached keep working, with netc's routing and masquerade; netc's new pods get
    addresses flannel's do not hold; a flannel pod's DEL through netc-cni frees its address."""
    (pod_a, address_a), (pod_b, address_b) = (
        cluster.flannel_pods[n.name] for n in (NODE_A, NODE_B)
    )
    assert (address_a, address_b) == ("10.244.1.2", "10.244.2.2")
    assert cluster.ask(pod_a.name, "tcp", address_b, POD_PORT) == f"node-b-flannel {address_a}"
    assert cluster.apply(NODE_A).returncode == 1

    for node in (NODE_A, NODE_B):
        for line in CLEANUP:
            cluster.run(cluster.ns(node), "sh", "-c", line)
    applied = cluster.apply_all()
    assert all(done.returncode == 2 for done in applied.values())
    assert not any(
        "cni0" in line
        for line in applied["node-a"].stdout.splitlines()
        if line.startswith("+ bridge")
    ), "flannel's cni0 is adopted as it is"

    assert cluster.ask(pod_a.name, "tcp", address_b, POD_PORT) == f"node-b-flannel {address_a}"
    assert cluster.ask(pod_b.name, "tcp", address_a, POD_PORT) == f"node-a-flannel {address_b}"
    cluster.serve(cluster.client, "tcp", CLIENT_PORT, "client")
    assert cluster.ask(pod_a.name, "tcp", CLIENT, CLIENT_PORT) == f"client {NODE_A.address}"
    routes = {
        r["dst"]: (r.get("gateway"), r["dev"])
        for r in cluster.routes(NODE_A)
        if r.get("protocol") == "78"
    }
    assert routes == {"10.244.2.0/24": ("10.244.2.0", "netc.1")}

    new = cluster.add_pod(NODE_A)
    assert new.addresses[4] == "10.244.1.3", "host-local's reservation of flannel's pod kept"
    assert (
        cluster.ask(new.pod.name, "tcp", address_b, POD_PORT)
        == f"node-b-flannel {new.addresses[4]}"
    )
    assert cluster.plan_live(NODE_A).returncode == 0

    conflist = driver.Conflist(cluster.conflist(NODE_A).encode())
    assert conflist.name == FLANNEL_CONFLIST["name"]
    driver.delete(conflist, cluster.flannel_invocation(NODE_A, pod_a))
    reservations = tmp_path / NODE_A.name / "ipam" / "cbr0"
    assert not (reservations / address_a).exists() and (reservations / "10.244.1.3").exists()
