"""The commands on a cluster whose members come from etcd: what a pinned node gets from the
configuration alone, and clear refusals for what only run time knows."""

from __future__ import annotations

import json

from click.testing import CliRunner

from runtime.cli import main
from tests.support import ROOT

ETCD = str(ROOT / "examples" / "etcd-cluster.netdsl")
STATIC = (ROOT / "examples" / "cluster.netdsl").read_text()


def netc(*args: str):
    return CliRunner().invoke(main, list(args))


def test_a_pinned_node_builds_from_its_block():
    result = netc("build", ETCD, "--node", "ingress-1", "--target", "netc")
    assert result.exit_code == 0, result.output
    network = json.loads(result.stdout)["plugins"][0]["netc"]["network"]
    assert network["bridge"]["mtu"] == 1450, "VXLAN over IPv4: underlay-mtu 1500 - 50"
    subnets = [s["cidr"] for s in network["ipam"]["subnets"]]
    assert subnets == ["10.244.1.0/24", "fd00:10:244:1::/64"]


def test_a_node_without_a_pin_is_told_its_agent_writes_its_conflist(tmp_path):
    for command in (
        ["build", ETCD, "--node", "worker-7", "--out", str(tmp_path / "out")],
        ["plan", ETCD, "--node", "worker-7", "--pod", "default/web"],
    ):
        result = netc(*command)
        assert result.exit_code == 2, result.output
        assert (
            "node 'worker-7' has no block pinned in cluster prod, whose members come from etcd"
        ) in result.output
        assert "netc agent" in result.output and "pinned nodes: ingress-1" in result.output
    assert not (tmp_path / "out").exists()


def test_no_folder_per_node_is_written_for_an_etcd_cluster(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = netc("build", ETCD, "--out", str(out))
    assert result.exit_code == 2
    assert "cluster prod takes its members from etcd" in result.output
    assert "give --node NAME" in result.output
    assert list(out.iterdir()) == []


def test_a_pod_on_a_pinned_node_is_planned_from_its_block():
    result = netc("plan", ETCD, "--node", "ingress-1", "--pod", "default/web")
    assert result.exit_code == 0, result.output
    assert "reserve an IPv4 address in 10.244.1.0/24" in result.output


def test_a_nodes_plan_and_apply_are_its_agents(tmp_path):
    """Made from the pins alone, the plan would prune the routes to every other member."""
    for command in ("plan", "apply"):
        result = netc(command, ETCD, "--node", "ingress-1")
        assert result.exit_code == 2, result.output
        assert "node ingress-1 of cluster prod routes to the members etcd holds at run time" in (
            result.output
        )
        assert "made and applied by its agent (netc agent)" in result.output


def _against(tmp_path, old: str, new: str):
    (tmp_path / "old").mkdir(exist_ok=True)
    (tmp_path / "old" / "cluster.netdsl").write_text(old)
    (tmp_path / "cluster.netdsl").write_text(new)
    result = netc(
        "plan",
        str(tmp_path / "cluster.netdsl"),
        "--against",
        str(tmp_path / "old"),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["changes"]


def test_a_change_plan_moves_a_static_cluster_to_etcd(tmp_path):
    etcd = STATIC.replace(
        "    node node-a {",
        "    membership etcd {\n        endpoints https://10.0.0.1:2379\n    }\n    node node-a {",
    )
    changes = _against(tmp_path, STATIC, etcd)
    settings = {c["subject"]: (c["old"], c["new"]) for c in changes if c["scope"] == "cluster prod"}
    assert settings == {
        "membership.source": ("static", "etcd"),
        "membership.endpoints": (None, "https://10.0.0.1:2379"),
    }
    nodes = {
        c["scope"]: (c["action"], c["old"], c["new"])
        for c in changes
        if c["scope"].startswith("node ")
    }
    assert nodes["node node-a of cluster prod"] == (
        "changed",
        "listed with block 1",
        "pinned to block 1",
    )


def test_a_moved_pin_strands_the_pods_of_its_old_block(tmp_path):
    text = (ROOT / "examples" / "etcd-cluster.netdsl").read_text()
    changes = _against(tmp_path, text, text.replace("block 1\n", "block 2\n"))
    (stranded, pin) = changes[-2:]
    assert stranded["layer"] == "running pods" and stranded["breaks_running_pods"]
    assert stranded["effect"].endswith(
        "drain ingress-1 and re-create its pods once its agent holds the new block"
    )
    assert (pin["subject"], pin["old"], pin["new"]) == (
        "ingress-1",
        "pinned to block 1",
        "pinned to block 2",
    )
    assert not [c for c in changes if c["layer"] == "node" and c["subject"] != "ingress-1"]
