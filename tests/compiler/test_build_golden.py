"""`netc build` output for every example, target and cniVersion, against golden files.

Each case is a directory under tests/golden/build/EXAMPLE/TARGET-VERSION/ holding
what `netc build --out` would write (NN-name.conflist) and, when the build
reports anything, `diagnostics.txt`: warnings next to the conflists, or the
errors (E107 for a third-party main plugin with --target netc) instead of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from compiler import emit
from compiler.cluster import needs_node, networks_for_node, nodes
from compiler.diagnostics import has_errors, render_text, sort_diagnostics
from compiler.versions import CNI_VERSIONS
from tests.support import EXAMPLE_SETS, ROOT, compile_example

VERSIONS = (*CNI_VERSIONS, None)


def version_id(version: str | None) -> str:
    return version or "source-default"


def build(example: str, target: str, version: str | None) -> dict[str, str]:
    """The files of one build: conflists by file name, plus diagnostics.txt if any.

    Networks of a cluster are built for each node, into NODE/ (as `--out` does); of an
    etcd cluster, for each pinned node (as `--node NAME` does: `--out` refuses).
    """
    compilation, sources = compile_example(example)
    assert compilation.ok, render_text(compilation.diagnostics, sources)
    folders = {"": list(compilation.networks)}
    if needs_node(compilation.networks):
        folders = {
            f"{node}/": networks_for_node(compilation.networks, compilation.clusters, node)
            for node in nodes(compilation.clusters)
        }
    found = sort_diagnostics(
        set(
            d
            for built in folders.values()
            for n in built
            for d in emit.target_diagnostics(
                n, target, version or n.cni_version, compilation.clusters
            )
        )
    )
    files = {"diagnostics.txt": render_text(found, sources)} if found else {}
    if not has_errors(found):
        files.update(
            (f"{folder}{emit.file_name(n)}", emit.render(emit.conflist(n, target, version)))
            for folder, built in folders.items()
            for n in built
        )
    return files


@pytest.mark.parametrize("version", VERSIONS, ids=version_id)
@pytest.mark.parametrize("target", emit.TARGETS)
@pytest.mark.parametrize("example", EXAMPLE_SETS)
def test_build_matches_golden(example, target, version, golden):
    golden.check_tree(
        f"golden/build/{example}/{target}-{version_id(version)}", build(example, target, version)
    )


PASSTHROUGH = [name for name in EXAMPLE_SETS if name.startswith("k8s-") or name == "flannel"]


@pytest.mark.parametrize("version", VERSIONS, ids=version_id)
@pytest.mark.parametrize("example", PASSTHROUGH)
def test_netc_target_refuses_passthrough_plugins(example, version):
    files = build(example, "netc", version)
    assert list(files) == ["diagnostics.txt"]
    assert "error[E107]" in files["diagnostics.txt"]


@pytest.mark.parametrize("version", VERSIONS, ids=version_id)
def test_chained_plugins_follow_netc_cni_as_they_follow_the_stock_plugins(version):
    """podman's firewall and tuning: after netc-cni in the netc target, in the order and
    with the options of the reference target's chain."""

    def plugins(target: str) -> list[dict]:
        (conflist,) = [
            json.loads(text)
            for name, text in build("podman", target, version).items()
            if name.endswith(".conflist")
        ]
        return conflist["plugins"]

    netc, reference = plugins("netc"), plugins("reference")
    assert [p["type"] for p in netc] == ["netc-cni", "firewall", "tuning"]
    assert netc[1:] == reference[-2:]


def test_every_bridge_example_builds_for_the_netc_target():
    bridged = [name for name in EXAMPLE_SETS if name not in PASSTHROUGH]
    assert bridged
    for example in bridged:
        assert any(name.endswith(".conflist") for name in build(example, "netc", None))


def calico(last_plugin: dict) -> dict:
    """A conflist of the Kubernetes 1.28 "Network Plugins" page, ending with `last_plugin`."""
    return {
        "cniVersion": "0.4.0",
        "name": "k8s-pod-network",
        "plugins": [
            {
                "type": "calico",
                "log_level": "info",
                "datastore_type": "kubernetes",
                "nodename": "127.0.0.1",
                "ipam": {"type": "host-local", "subnet": "usePodCidr"},
                "policy": {"type": "k8s"},
                "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
            },
            last_plugin,
        ],
    }


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("k8s-calico-portmap", calico({"type": "portmap", "capabilities": {"portMappings": True}})),
        (
            "k8s-calico-bandwidth",
            calico({"type": "bandwidth", "capabilities": {"bandwidth": True}}),
        ),
    ],
)
def test_kubernetes_network_plugins_page(example, expected):
    files = build(example, "reference", None)
    assert list(files) == ["10-k8s-pod-network.conflist"]
    assert json.loads(files["10-k8s-pod-network.conflist"]) == expected


def build_everything() -> dict[str, dict[str, str]]:
    return {
        f"{example}/{target}": build(example, target, None)
        for example in EXAMPLE_SETS
        for target in emit.TARGETS
    }


def build_everything_in_a_new_process(hash_seed: str) -> dict[str, dict[str, str]]:
    script = (
        "import json; from tests.compiler.test_build_golden import build_everything; "
        "print(json.dumps(build_everything()))"
    )
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    process = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        check=True,
        text=True,
    )
    return json.loads(process.stdout)


def test_build_is_deterministic():
    """Same input, same bytes: twice in one process, and in processes with other hash seeds."""
    first = build_everything()
    assert build_everything() == first
    assert build_everything_in_a_new_process("1") == first
    assert build_everything_in_a_new_process("2") == first
