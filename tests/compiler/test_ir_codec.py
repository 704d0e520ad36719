"""The IR as JSON inside --target netc conflists: lossless, stable, strict."""

from __future__ import annotations

import re

import pytest

from compiler import datatypes, ir_codec
from compiler.ir import Bridge, Cluster, Membership, Network
from tests.support import EXAMPLE_SETS, compile_example, portable

NETWORKS = {
    f"{example}/{n.name}": n
    for example in EXAMPLE_SETS
    for n in compile_example(example)[0].networks
}
CLUSTERS = {
    f"{example}/{c.name}": c
    for example in EXAMPLE_SETS
    for c in compile_example(example)[0].clusters
}


@pytest.mark.parametrize("name", NETWORKS)
def test_every_example_network_round_trips(name):
    network = NETWORKS[name]
    assert ir_codec.decode(ir_codec.encode(network)) == portable(network)


@pytest.mark.parametrize("name", NETWORKS)
def test_the_digest_ignores_key_order_and_is_stable_across_compiles(name):
    network = NETWORKS[name]
    encoded = ir_codec.encode(network)
    reordered = dict(reversed(list(encoded.items())))
    example = name.split("/")[0]
    (again,) = [n for n in compile_example(example)[0].networks if n.name == network.name]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ir_codec.digest(encoded))
    assert ir_codec.digest(reordered) == ir_codec.digest(encoded)
    assert ir_codec.digest(ir_codec.encode(again)) == ir_codec.digest(encoded)


def test_the_digest_changes_with_any_setting():
    network = NETWORKS["pods/pods"]
    changed = datatypes.replace(network, bridge=datatypes.replace(network.bridge, mtu=1400))
    assert ir_codec.digest(ir_codec.encode(changed)) != ir_codec.digest(ir_codec.encode(network))


def test_defaults_are_left_out():
    assert ir_codec.encode(Network("pods", bridge=Bridge())) == {"name": "pods", "bridge": {}}


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"name": 42},
        {"name": "pods", "priority": "10"},
        {"name": "pods", "ipam": {"subnets": [{"cidr": "not-a-cidr"}]}},
        {"name": "pods", "unknown_field": 1},
    ],
)
def test_malformed_documents_are_refused(document):
    with pytest.raises(ir_codec.FormatError):
        ir_codec.decode(document)


def test_static_ips_round_trip():
    network = NETWORKS["pods/pods"]
    static = datatypes.replace(network, ipam=datatypes.replace(network.ipam, static_ips=True))
    encoded = ir_codec.encode(static)
    assert encoded["ipam"]["static_ips"] is True
    assert ir_codec.decode(encoded) == portable(static)


@pytest.mark.parametrize("name", CLUSTERS)
def test_every_example_cluster_round_trips_with_its_membership(name):
    cluster = CLUSTERS[name]
    assert ir_codec.decode_as(Cluster, ir_codec.encode(cluster)) == portable(cluster)


def test_a_membership_travels_as_written_and_a_static_one_not_at_all():
    assert "membership" not in ir_codec.encode(CLUSTERS["cluster/prod"])
    assert ir_codec.encode(CLUSTERS["etcd-cluster/prod"])["membership"] == {
        "source": "etcd",
        "endpoints": ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"],
        "ca_file": "/etc/netc/etcd/ca.crt",
        "cert_file": "/etc/netc/etcd/client.crt",
        "key_file": "/etc/netc/etcd/client.key",
        "span": "cluster prod › membership etcd",
    }


@pytest.mark.parametrize(
    "membership",
    [
        {"source": "etcd", "endpoints": "https://10.0.0.1:2379"},
        {"source": "etcd", "lease": "60s"},
        {"source": "etcd", "ca_file": 7},
        {"source": "etcd", "quorum": 2},
    ],
)
def test_a_malformed_membership_is_refused(membership):
    with pytest.raises(ir_codec.FormatError):
        ir_codec.decode_as(
            Cluster, {**ir_codec.encode(CLUSTERS["cluster/prod"]), "membership": membership}
        )


def test_membership_defaults_are_left_out():
    assert ir_codec.encode(Membership("etcd", ("https://e:2379",))) == {
        "source": "etcd",
        "endpoints": ["https://e:2379"],
    }
