"""`membership` in a cluster, as the compiler reads it: the IR it lowers to, its defaults and
normal forms, and a dynamic cluster's pinned nodes (the bad inputs are tests/errors/)."""

from __future__ import annotations

import pytest

from compiler.ir import Membership
from compiler.pipeline import compile_sources
from compiler.source import SourceFile

ISSUE_EXAMPLE = """
cluster prod {
    pod-cidr 10.244.0.0/16, fd00:10:244::/56
    routing vxlan
    membership etcd {
        endpoints https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379
        prefix /netc
        lease 60s
        ca-file /etc/netc/etcd/ca.crt
        cert-file /etc/netc/etcd/client.crt
        key-file /etc/netc/etcd/client.key
    }
}
"""


def _compile(text: str):
    return compile_sources([SourceFile("c.netdsl", text)])


def _cluster(text: str):
    compilation = _compile(text)
    assert compilation.ok, compilation.diagnostics
    (cluster,) = compilation.clusters
    return cluster


def _etcd(settings: str, nodes: str = "") -> str:
    return (
        f"cluster prod {{\n    pod-cidr 10.244.0.0/16\n    routing vxlan\n"
        f"    membership etcd {{\n{settings}\n    }}\n{nodes}}}\n"
    )


def test_the_issues_example_lowers_to_the_membership_the_agents_read():
    cluster = _cluster(ISSUE_EXAMPLE)
    membership = cluster.membership
    assert (membership.source, membership.prefix, membership.lease) == ("etcd", "/netc", 60)
    assert membership.endpoints == (
        "https://10.0.0.1:2379",
        "https://10.0.0.2:2379",
        "https://10.0.0.3:2379",
    )
    assert (membership.ca_file, membership.cert_file, membership.key_file) == (
        "/etc/netc/etcd/ca.crt",
        "/etc/netc/etcd/client.crt",
        "/etc/netc/etcd/client.key",
    )
    assert membership.dynamic and membership.span.path == "cluster prod › membership etcd"
    assert cluster.nodes == ()


def test_without_membership_a_cluster_is_static():
    cluster = _cluster("cluster prod {\n    pod-cidr 10.244.0.0/16\n}\n")
    assert cluster.membership == Membership() and not cluster.membership.dynamic
    written = _cluster("cluster prod {\n    pod-cidr 10.244.0.0/16\n    membership static\n}\n")
    assert written.membership.source == "static" and written.membership.span is not None


def test_etcd_defaults_prefix_lease_and_files():
    membership = _cluster(_etcd("        endpoints https://10.0.0.1:2379")).membership
    assert (membership.prefix, membership.lease) == ("/netc", 60)
    assert (membership.ca_file, membership.cert_file, membership.key_file) == (None, None, None)


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("https://10.0.0.1", "https://10.0.0.1:2379"),
        ("HTTPS://Etcd-1.Example.COM:2380/", "https://etcd-1.example.com:2380"),
        ('"https://[fd00:0::1]"', "https://[fd00::1]:2379"),
        ('"https://[FD00::2]:12379"', "https://[fd00::2]:12379"),
        ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
    ],
)
def test_an_endpoint_is_kept_in_its_normal_form_the_port_written(written, normal):
    compilation = _compile(_etcd(f"        endpoints {written}"))
    assert [d.code for d in compilation.diagnostics] == (
        ["W006"] if normal.startswith("http:") else []
    )
    (cluster,) = compilation.clusters
    assert cluster.membership.endpoints == (normal,)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("1s", 1),
        ("60s", 60),
        ("2m", 120),
        ("1h30m", 5400),
        ("90s", 90),
        ("24h", 86400),
        ("1m0s", 60),
    ],
)
def test_a_lease_is_read_in_seconds(written, seconds):
    assert (
        _cluster(_etcd(f"        endpoints https://e1\n        lease {written}")).membership.lease
        == seconds
    )


@pytest.mark.parametrize("written", ["0s", "24h1s", "86401s", "25h", "1h90", "s", "m5", "-5s"])
def test_a_lease_outside_one_second_to_a_day_is_refused(written):
    compilation = _compile(_etcd(f"        endpoints https://e1\n        lease {written}"))
    assert [d.code for d in compilation.diagnostics] == ["E617"]


@pytest.mark.parametrize("prefix", ["/netc", "/coreos.com/network", "/a/b-c_d.e"])
def test_key_prefixes_of_netcs_own_are_kept_as_written(prefix):
    assert (
        _cluster(_etcd(f"        endpoints https://e1\n        prefix {prefix}")).membership.prefix
        == prefix
    )


@pytest.mark.parametrize(
    "prefix", ["/", "//", "netc", "/netc/", "/a//b", "/a/../b", "/./a", '"/a b"', '"/a\\tb"']
)
def test_other_key_prefixes_are_refused(prefix):
    compilation = _compile(_etcd(f"        endpoints https://e1\n        prefix {prefix}"))
    assert [d.code for d in compilation.diagnostics] == ["E616"]


@pytest.mark.parametrize(
    "path",
    [
        "ca.crt",
        "./ca.crt",
        "/etc/./ca.crt",
        "/etc//ca.crt",
        "//etc/ca.crt",
        "/etc/netc/",
        "/",
        '"/etc/ca\\n.crt"',
    ],
)
def test_a_tls_file_is_a_normal_absolute_path(path):
    compilation = _compile(_etcd(f"        endpoints https://e1\n        ca-file {path}"))
    assert [d.code for d in compilation.diagnostics] == ["E013"]


def test_a_path_with_spaces_is_quoted_and_kept_as_written():
    membership = _cluster(
        _etcd('        endpoints https://e1\n        ca-file "/etc/netc/etcd certs/ca.crt"')
    ).membership
    assert membership.ca_file == "/etc/netc/etcd certs/ca.crt"


def test_a_dynamic_cluster_without_nodes_compiles_with_its_networks():
    compilation = _compile(
        ISSUE_EXAMPLE + "network pods {\n    bridge cni0 { gateway }\n"
        "    ipam { cluster prod; route 0.0.0.0/0; route ::/0 }\n}\n"
    )
    assert compilation.ok and not compilation.diagnostics
    (cluster,) = compilation.clusters
    assert cluster.pod_mtu == 1450, "VXLAN over IPv4 until members say otherwise"


def test_a_pinned_node_keeps_its_block_and_no_address():
    compilation = _compile(
        _etcd(
            "        endpoints https://e1",
            "    node edge-1 {\n        address 192.168.1.7/24\n        block 7\n    }\n",
        )
    )
    assert [d.code for d in compilation.diagnostics] == ["W007"]
    (cluster,) = compilation.clusters
    (node,) = cluster.nodes
    assert (node.name, node.block, node.addresses) == ("edge-1", 7, ())
    assert [str(s) for s in node.subnets] == ["10.244.7.0/24"]


def test_a_pinned_nodes_bad_address_is_still_an_error():
    compilation = _compile(
        _etcd(
            "        endpoints https://e1",
            "    node edge-1 { address 192.168.1.300/24; block 7 }\n",
        )
    )
    assert [d.code for d in compilation.diagnostics] == ["E201"]


def test_pins_need_no_address_in_host_gw_either():
    text = _etcd("        endpoints https://e1", "    node a { block 1 }\n    node b { block 2 }\n")
    compilation = _compile(text.replace("routing vxlan", "routing host-gw"))
    assert compilation.ok and not compilation.diagnostics


def test_a_static_node_still_needs_its_address():
    compilation = _compile(
        "cluster prod {\n    pod-cidr 10.244.0.0/16\n    membership static\n"
        "    node a { block 1 }\n}\n"
    )
    assert [d.code for d in compilation.diagnostics] == ["E012"]


def test_a_route_via_is_checked_against_the_blocks_nodes_may_claim():
    network = (
        "network pods {\n    bridge cni0 { gateway }\n"
        "    ipam { cluster prod; route 192.168.0.0/16 via 10.244.0.9 }\n}\n"
    )
    pinned = _etcd("        endpoints https://e1", "    node a { block 0 }\n")
    problems = _compile(pinned + network).diagnostics
    assert [d.code for d in problems] == ["E206"]
    assert "subnet 10.244.1.0/24 of a node that claims block 1 from etcd" in problems[0].message
    static = (
        "cluster prod {\n    pod-cidr 10.244.0.0/16\n    routing vxlan\n"
        "    node a { address 192.168.1.1/24; block 0 }\n}\n"
    )
    assert _compile(static + network).ok, "the one node of a static cluster reaches it"


def _kubernetes(block: str = "") -> str:
    return (
        f"cluster prod {{\n    pod-cidr 10.244.0.0/16\n    routing vxlan\n"
        f"    membership kubernetes{block}\n}}\n"
    )


def test_kubernetes_membership_takes_the_default_annotation_prefix():
    membership = _cluster(_kubernetes()).membership
    assert (membership.source, membership.annotation_prefix) == ("kubernetes", "netc.dev/")
    assert membership.dynamic and membership.span.path == "cluster prod › membership kubernetes"


@pytest.mark.parametrize("prefix", ["netc.dev/", "example.com/", "net-c.corp.example/", "a/"])
def test_an_annotation_prefix_of_ones_own_is_kept(prefix):
    written = _cluster(_kubernetes(f" {{\n        annotation-prefix {prefix}\n    }}"))
    assert written.membership.annotation_prefix == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "netc.dev",
        "Netc.dev/",
        "netc.dev/x/",
        "netc..dev/",
        "/",
        "-netc.dev/",
        "kubernetes.io/",
        "node.k8s.io/",
        '"netc dev/"',
        f"{'a' * 254}/",
    ],
)
def test_other_annotation_prefixes_are_refused(prefix):
    compilation = _compile(_kubernetes(f" {{\n        annotation-prefix {prefix}\n    }}"))
    assert [d.code for d in compilation.diagnostics] == ["E620"]


def test_each_source_refuses_the_settings_of_the_other():
    compilation = _compile(_kubernetes(" {\n        lease 60s\n    }"))
    assert [d.code for d in compilation.diagnostics] == ["E010"]
    compilation = _compile(
        _etcd("        endpoints https://e1\n        annotation-prefix netc.dev/")
    )
    assert [d.code for d in compilation.diagnostics] == ["E010"]
