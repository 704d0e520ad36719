"""Members from Kubernetes' Nodes, as the compiler reads them (pure): the podCIDRs
kube-controller-manager assigned, checked against the cluster's pod-cidr and node-block, and
the underlay addresses an agent published; what to set when they do not agree."""

from __future__ import annotations

import ipaddress

import kubernetes_validate
import pytest

from compiler.ir import Cluster, Membership, Routing
from compiler.membership import (
    BadRecord,
    Member,
    Members,
    NoPodCIDR,
    pod_cidr_advice,
    read_node,
    with_members,
)
from tests.membership.nodes import node_object

ANNOTATION = "netc.dev/underlay-addresses"


def _cluster(*cidrs: str, blocks: tuple[int, ...] = (24,)) -> Cluster:
    return Cluster(
        "k",
        tuple(ipaddress.ip_network(c) for c in cidrs),
        blocks,
        (),
        Routing("vxlan"),
        membership=Membership("kubernetes"),
    )


def _node(pod_cidrs, addresses="198.18.10.11/24", name="node-a"):
    node = node_object(
        name,
        pod_cidrs,
        ["198.18.10.11"],
        {ANNOTATION: addresses} if addresses is not None else None,
    )
    kubernetes_validate.validate(node, "1.28.0", strict=True)
    return node


def test_a_node_with_its_podcidr_and_published_address_is_a_member():
    cluster = _cluster("10.244.0.0/16")
    member = read_node(cluster, _node(["10.244.7.0/24"]))
    assert member == Member(
        "node-a",
        None,
        (ipaddress.ip_interface("198.18.10.11/24"),),
        subnets=(ipaddress.ip_network("10.244.7.0/24"),),
    )


def test_dual_stack_podcidrs_come_in_the_order_of_the_pod_cidrs():
    cluster = _cluster("fd00:10:244::/56", "10.244.0.0/16", blocks=(64, 24))
    member = read_node(
        cluster,
        _node(["10.244.7.0/24", "fd00:10:244:7::/64"], "198.18.10.11/24,fd00:198:10::11/64"),
    )
    assert [str(s) for s in member.subnets] == ["fd00:10:244:7::/64", "10.244.7.0/24"]
    assert len(member.addresses) == 2


def test_a_podcidr_of_a_family_the_cluster_does_not_route_is_left_alone():
    member = read_node(_cluster("10.244.0.0/16"), _node(["10.244.7.0/24", "fd00::/64"]))
    assert [str(s) for s in member.subnets] == ["10.244.7.0/24"]


@pytest.mark.parametrize(
    ("pod_cidrs", "why", "kind"),
    [
        (None, "it has no podCIDR", NoPodCIDR),
        (
            ["10.99.7.0/24"],
            "its podCIDR 10.99.7.0/24 is outside the cluster's pod-cidr 10.244.0.0/16",
            BadRecord,
        ),
        (
            ["10.244.8.0/23"],
            "its podCIDR 10.244.8.0/23 is a /23, and the cluster's node-block is /24",
            BadRecord,
        ),
        (["10.244.7.1/24"], "is not a CIDR", BadRecord),
    ],
)
def test_podcidrs_that_do_not_fit_the_cluster_are_refused_with_the_reason(pod_cidrs, why, kind):
    with pytest.raises(kind, match=why.replace(".", r"\.").replace("/", "/")):
        read_node(_cluster("10.244.0.0/16"), _node(pod_cidrs))


def test_a_dual_stack_cluster_needs_a_podcidr_of_each_family():
    cluster = _cluster("10.244.0.0/16", "fd00:10:244::/56", blocks=(24, 64))
    with pytest.raises(NoPodCIDR, match="no IPv6 podCIDR, and pod-cidr fd00:10:244::/56"):
        read_node(cluster, _node(["10.244.7.0/24"]))


@pytest.mark.parametrize(
    ("addresses", "why"),
    [
        (None, "no annotation netc.dev/underlay-addresses: netc's agent has not run on it yet"),
        ("198.18.10.11", "not an address with its prefix"),
        ("10.244.3.1/16", "inside the pod CIDRs"),
        ("198.18.10.11/24,198.18.10.12/24", "two addresses of one family"),
        ("x" * 5000, "more than 4096"),
    ],
)
def test_the_published_addresses_are_checked(addresses, why):
    with pytest.raises(BadRecord, match=why):
        read_node(_cluster("10.244.0.0/16"), _node(["10.244.7.0/24"], addresses))


@pytest.mark.parametrize(
    "node",
    [None, [], {"metadata": {"name": "Not_A_Name"}}, {"metadata": {"name": "a"}, "spec": []}],
)
def test_what_is_not_a_node_is_refused(node):
    with pytest.raises(BadRecord):
        read_node(_cluster("10.244.0.0/16"), node)


def test_the_advice_names_the_controller_managers_flags_for_the_cluster():
    assert pod_cidr_advice(_cluster("10.244.0.0/16")) == (
        "kube-controller-manager assigns them when run with --allocate-node-cidrs "
        "--cluster-cidr=10.244.0.0/16 --node-cidr-mask-size=24 (kubeadm init "
        "--pod-network-cidr=10.244.0.0/16); they must agree with the cluster's pod-cidr and "
        "node-block"
    )
    dual = pod_cidr_advice(_cluster("10.244.0.0/16", "fd00:10:244::/56", blocks=(24, 64)))
    assert "--node-cidr-mask-size-ipv4=24 --node-cidr-mask-size-ipv6=64" in dual


def test_two_nodes_with_one_podcidr_keep_it_for_the_first_by_name():
    cluster = _cluster("10.244.0.0/16")
    subnet = (ipaddress.ip_network("10.244.7.0/24"),)
    members = Members.of(
        1,
        [
            Member(name, None, (ipaddress.ip_interface(f"198.18.10.{i}/24"),), subnets=subnet)
            for i, name in ((12, "node-b"), (11, "node-a"))
        ],
    )
    assert [n.name for n in with_members(cluster, members).nodes] == ["node-a"]
