"""The standard-library Kubernetes client against the tests' API server: pages, watches, merge
patches, the errors sorted as the source needs them, and where its configuration comes from
(the pod's service account, a kubeconfig)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from runtime.kubeapi import (
    ConfigError,
    Expired,
    Kube,
    Refused,
    Unavailable,
    from_kubeconfig,
    in_cluster,
)
from runtime.netns import node_namespace
from tests.membership.apiserver import ADMIN_TOKEN, AGENT_TOKEN
from tests.membership.nodes import node_object


@pytest.fixture
def kube(api, tmp_path):
    return Kube(from_kubeconfig(str(api.kubeconfig(tmp_path / "kubeconfig"))))


def _nodes(api, count: int) -> None:
    for i in range(count):
        api.add_node(node_object(f"node-{i}", [f"10.244.{i}.0/24"], [f"198.18.10.{20 + i}"]))


def test_a_listing_in_pages_is_every_node_at_the_first_pages_version(api, kube):
    _nodes(api, 5)
    with node_namespace(api.sim.client):
        listing = kube.list_nodes(page=2)
    assert [n["metadata"]["name"] for n in listing.items] == [f"node-{i}" for i in range(5)]
    assert listing.resource_version == str(api.store.version)
    assert api.count("list") == 3


def test_a_watch_brings_changes_then_bookmarks_and_a_compacted_version_is_expired(api, kube):
    _nodes(api, 2)
    with node_namespace(api.sim.client):
        version = kube.list_nodes().resource_version
        kube.patch_annotations("node-0", {"netc.dev/a": "1"})
        api.delete_node("node-1")
        events = [
            (e.type, e.node["metadata"].get("name")) for e in kube.watch_nodes(version, seconds=1)
        ]
        assert events[:2] == [("MODIFIED", "node-0"), ("DELETED", "node-1")]
        assert ("BOOKMARK", None) in events[2:]
        api.store.compact()
        api.store.tick()
        with pytest.raises(Expired, match="HTTP 410: too old resource version"):
            list(kube.watch_nodes(version, seconds=1))


def test_a_merge_patch_sets_and_removes_annotations_and_keeps_the_others(api, kube):
    api.add_node(
        node_object(
            "node-a",
            ["10.244.1.0/24"],
            ["198.18.10.11"],
            {"other.example/x": "kept", "netc.dev/old": "gone"},
        )
    )
    with node_namespace(api.sim.client):
        node = kube.patch_annotations("node-a", {"netc.dev/new": "1", "netc.dev/old": None})
    assert node["metadata"]["annotations"] == {"other.example/x": "kept", "netc.dev/new": "1"}
    assert api.node("node-a")["spec"]["podCIDRs"] == ["10.244.1.0/24"]


def test_refusals_carry_the_status_and_the_apis_message(api, kube, tmp_path):
    with node_namespace(api.sim.client):
        with pytest.raises(Refused, match='nodes "ghost" not found') as missing:
            kube.get_node("ghost")
        assert missing.value.status == 404
        stranger = Kube(from_kubeconfig(str(api.kubeconfig(tmp_path / "bad", "wrong"))))
        with pytest.raises(Refused, match="HTTP 401: Unauthorized"):
            stranger.list_nodes()
        api.roles[AGENT_TOKEN].discard("watch")
        with pytest.raises(Refused, match='cannot watch resource "nodes"') as forbidden:
            list(kube.watch_nodes("1"))
        assert forbidden.value.status == 403
        api.stop()
        with pytest.raises(Unavailable, match="did not answer"):
            kube.list_nodes()


def test_a_watch_cut_by_the_server_going_away_is_unavailable(api, kube):
    _nodes(api, 1)
    with node_namespace(api.sim.client):
        version = kube.list_nodes().resource_version
        watch = kube.watch_nodes(version, seconds=30)
        api.store.tick()
        assert next(watch).type == "BOOKMARK"
        api.stop()
        with pytest.raises(Unavailable):
            list(watch)


def test_in_a_pod_the_service_account_is_used_and_its_token_read_at_every_request(api, tmp_path):
    root = tmp_path / "serviceaccount"
    root.mkdir()
    (root / "ca.crt").write_bytes(Path(api.tls["ca.crt"]).read_bytes())
    (root / "token").write_text(AGENT_TOKEN + "\n")
    config = in_cluster(
        str(root), {"KUBERNETES_SERVICE_HOST": api.address, "KUBERNETES_SERVICE_PORT": "6443"}
    )
    assert config.server == "https://198.18.10.201:6443"
    kube = Kube(config)
    with node_namespace(api.sim.client):
        kube.list_nodes()
        (root / "token").write_text(ADMIN_TOKEN)  # the kubelet rotated it
        kube.list_nodes()
    assert [who for who, verb, _ in api.requests if verb == "list"] == [
        "system:serviceaccount:netc-system:netc-node",
        "kubernetes-admin",
    ]
    ipv6 = in_cluster(
        str(root), {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert ipv6.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError, match="not in a pod"):
        in_cluster(str(root), {})
    os.unlink(root / "token")
    with pytest.raises(ConfigError, match="no service account token"):
        in_cluster(str(root), {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"})


def _kubeconfig(tmp_path, cluster: dict, user: dict) -> str:
    path = tmp_path / "config"
    path.write_text(
        json.dumps(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return str(path)


def test_a_kubeconfigs_client_certificate_data_goes_to_private_files(tmp_path):
    data = base64.b64encode(b"PEM").decode()
    config = from_kubeconfig(
        _kubeconfig(
            tmp_path,
            {"server": "https://k:6443", "certificate-authority": "ca.crt"},
            {"client-certificate-data": data, "client-key-data": data},
        ),
        str(tmp_path),
    )
    assert config.ca_file == str(tmp_path / "ca.crt"), "relative to the kubeconfig"
    assert Path(config.key_file).read_bytes() == b"PEM"
    assert os.stat(config.key_file).st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("cluster", "user", "why"),
    [
        ({"server": "https://k"}, {"exec": {"command": "aws"}}, "through a plugin"),
        (
            {"server": "https://k", "insecure-skip-tls-verify": True},
            {"token": "t"},
            "skips checking the server's certificate",
        ),
        ({"server": "http://k:8080"}, {"token": "t"}, "no https:// server"),
        ({"server": "https://k", "certificate-authority-data": "%%%"}, {}, "not base64"),
    ],
)
def test_kubeconfigs_netc_cannot_use_safely_are_refused(tmp_path, cluster, user, why):
    with pytest.raises(ConfigError, match=why):
        from_kubeconfig(_kubeconfig(tmp_path, cluster, user))
