"""Pods on different nodes reach each other without NAT (host-gw, VXLAN, mixed).

One simulated cluster per routing mode and stack (IPv4, dual stack), shared
by this module's verdicts, none of which changes it: three nodes on one
underlay, and for VXLAN and mixed a fourth behind a router (so in mixed
mode node-a reaches node-b directly and node-d through the tunnel).  Every
verdict is read on the receiving side: the pod's server answers with the
source address it saw.
"""

from __future__ import annotations

import itertools

import pytest

from tests.cluster.sim import (
    CLIENT,
    CLIENT6,
    HOST_PORT,
    NODE_A,
    NODE_B,
    NODE_C,
    NODE_D,
    POD_PORT,
    SimCluster,
)

CASES = [
    (mode, dual, False) for mode in ("host-gw", "vxlan", "mixed") for dual in (False, True)
] + [("vxlan", True, True)]
"""(routing, dual stack, the nodes' underlay addresses IPv6 only: VXLAN over IPv6)."""
CLIENT_PORT = 9000
ICMP_HEADERS = {4: 28, 6: 48}


@pytest.fixture(
    scope="module",
    params=CASES,
    ids=[
        f"{mode}-{'dual' if dual else 'ipv4'}{'-over-ipv6' if v6 else ''}"
        for mode, dual, v6 in CASES
    ],
)
def cluster(request, tmp_path_factory, bin_dir):
    mode, dual, ipv6_underlay = request.param
    nodes = (NODE_A, NODE_B, NODE_C) + ((NODE_D,) if mode != "host-gw" else ())
    with SimCluster(
        tmp_path_factory.mktemp(mode), bin_dir, mode, dual, nodes, ipv6_underlay=ipv6_underlay
    ) as sim:
        sim.apply_all()
        sim.add_pods(list(nodes))
        sim.serve(sim.client, "tcp", CLIENT_PORT, "client")
        yield sim


def _far(cluster: SimCluster):
    """The node farthest from node-a: behind the router when there is one."""
    return cluster.listed[-1]


def test_each_peer_is_routed_as_the_mode_says_with_netcs_protocol(cluster):
    routes = {r["dst"]: r for r in cluster.routes(NODE_A) if r.get("protocol") == "78"}
    fdb = {e["mac"]: e["dst"] for e in cluster.fdb(NODE_A)}
    for peer in cluster.listed[1:]:
        tunnelled = cluster.mode == "vxlan" or (
            cluster.mode == "mixed" and peer.underlay != NODE_A.underlay
        )
        if tunnelled:
            assert fdb.pop(cluster.mac(peer)) == (
                peer.address6 if cluster.ipv6_underlay else peer.address
            )
        for family in cluster.families:
            route = routes.pop(str(peer.subnet(family)))
            if tunnelled:
                assert (route["dev"], route["gateway"]) == (
                    "netc.1",
                    str(peer.subnet(family).network_address),
                )
                assert "onlink" in route["flags"]
            else:
                assert (route["dev"], route["gateway"]) == (
                    "eth0",
                    peer.address if family == 4 else peer.address6,
                )
    assert routes == {} and fdb == {}, "netc added routes or entries the plan does not have"


def test_a_pod_reaches_every_pod_on_another_node_and_it_sees_the_pods_own_address(cluster):
    pairs = [
        (source, target, family)
        for source, target in itertools.permutations(cluster.listed, 2)
        for family in cluster.families
    ]
    answers = cluster.ask_all(
        [
            (cluster.pods[s.name].pod.name, cluster.pods[t.name].addresses[f], POD_PORT)
            for s, t, f in pairs
        ]
    )
    for (source, target, family), answer in zip(pairs, answers, strict=True):
        assert answer == f"{target.name} {cluster.pods[source.name].addresses[family]}", (
            f"{source.name} -> {target.name} IPv{family}"
        )


def test_a_node_reaches_pods_on_other_nodes(cluster):
    far = _far(cluster)
    pairs = [(NODE_A, NODE_B), (NODE_A, far), (far, NODE_A)]
    questions = [
        (cluster.ns(s), cluster.pods[t.name].addresses[f], POD_PORT)
        for s, t in pairs
        for f in cluster.families
    ]
    answers = cluster.ask_all(questions)
    expected = [t.name for _, t in pairs for _ in cluster.families]
    assert [a.split()[0] if a else None for a in answers] == expected


def test_pods_reach_the_outside_world_masqueraded_to_their_nodes_address(cluster):
    targets = {4: CLIENT, 6: CLIENT6}
    cases = [(node, family) for node in cluster.listed for family in cluster.families]
    answers = cluster.ask_all(
        [(cluster.pods[n.name].pod.name, targets[f], CLIENT_PORT) for n, f in cases]
    )
    for (node, family), answer in zip(cases, answers, strict=True):
        assert answer == f"client {node.address if family == 4 else node.address6}", (
            f"pod on {node.name}, IPv{family}"
        )


def test_a_pod_reaches_a_host_port_on_another_node(cluster):
    far = _far(cluster)
    pairs = [(NODE_A, NODE_B), (far, NODE_A)]
    questions = [
        (cluster.pods[s.name].pod.name, t.address if f == 4 else t.address6, HOST_PORT)
        for s, t in pairs
        for f in cluster.families
    ]
    answers = cluster.ask_all(questions)
    assert [a.split()[0] if a else None for a in answers] == [
        t.name for _, t in pairs for _ in cluster.families
    ]


def test_across_vxlan_the_pods_mtu_passes_and_one_byte_more_is_refused(cluster):
    if cluster.mode == "host-gw":
        pytest.skip("no tunnel: host-gw pods have the underlay's MTU")
    mtu = cluster.pod_mtu
    source = cluster.pods[NODE_A.name].pod.name
    for family in cluster.families:
        target = cluster.pods[_far(cluster).name].addresses[family]
        payload = mtu - ICMP_HEADERS[family]
        fits = cluster.run(
            source,
            "ping",
            f"-{family}",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            str(payload),
            target,
            check=False,
        )
        assert fits.returncode == 0, fits.stdout + fits.stderr
        # refused at once by the sender's own stack; ping then only waits out -W
        too_big = cluster.run(
            source,
            "ping",
            f"-{family}",
            "-c",
            "1",
            "-W",
            "0.3",
            "-M",
            "do",
            "-s",
            str(payload + 1),
            target,
            check=False,
        )
        assert too_big.returncode != 0
        assert "message too long" in too_big.stderr.lower(), too_big.stderr
