"""`netc plan --against OLD`, the change plan a pull request review reads.

Source locations make no noise (comments, moved lines: nothing); a one-value
change is a few lines saying what changes and when it reaches the nodes.
"""

import json
import subprocess

import pytest
from click.testing import CliRunner

from runtime.cli import main
from tests.support import ROOT

CLUSTER = (ROOT / "examples" / "cluster.netdsl").read_text()
NODE_D = (
    "    node node-d {\n        address 192.168.10.14/24, fd00:192:168:10::14/64\n"
    "        block 4\n    }\n"
)


def _plan(tmp_path, old, new, *extra):
    (tmp_path / "old").mkdir(exist_ok=True)
    (tmp_path / "old" / "cluster.netdsl").write_text(old)
    (tmp_path / "cluster.netdsl").write_text(new)
    return CliRunner().invoke(
        main, ["plan", str(tmp_path / "cluster.netdsl"), "--against", str(tmp_path / "old"), *extra]
    )


def test_comments_and_moved_lines_make_an_empty_change_plan(tmp_path):
    moved = CLUSTER.replace("    hostport {", "    # ports\n\n    hostport {")
    moved = moved.replace(
        "        route 0.0.0.0/0\n        route ::/0\n",
        "        route 0.0.0.0/0  # default\n        route ::/0\n",
    )
    result = _plan(tmp_path, CLUSTER, "# reviewed\n" + moved, "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes" in result.stdout


def test_a_one_value_change_is_a_few_lines_with_its_reach(tmp_path):
    changed = CLUSTER.replace("deny 22, 10250", "deny 22, 10250, 2222")
    result = _plan(tmp_path, CLUSTER, changed, "--detailed-exitcode")
    assert result.exit_code == 2
    lines = result.stdout.strip().splitlines()
    assert len(lines) <= 8, result.stdout
    assert "+ hostport.deny[2222]" in result.stdout
    assert "every ADD from now on" in result.stdout


def test_an_mtu_reaches_running_pods_only_when_they_are_recreated(tmp_path):
    changed = CLUSTER.replace("        gateway\n", "        mtu 1400\n        gateway\n", 1)
    document = json.loads(_plan(tmp_path, CLUSTER, changed, "--format", "json").stdout)
    layers = {(c["scope"], c["layer"]) for c in document["changes"]}
    assert ("network pods", "setting") in layers and ("network pods", "pods") in layers
    assert {f"node node-{n} of cluster prod" for n in "abc"} <= {s for s, _ in layers}
    pod = next(c for c in document["changes"] if c["layer"] == "pods")
    assert "new pods only" in pod["effect"]
    node = next(c for c in document["changes"] if c["layer"] == "node")
    assert node["effect"].startswith("at once")


def test_a_new_node_gives_every_peer_routes_at_once(tmp_path):
    changed = CLUSTER.replace("    node node-c {", NODE_D + "    node node-c {")
    document = json.loads(_plan(tmp_path, CLUSTER, changed, "--format", "json").stdout)
    added = [c for c in document["changes"] if c["action"] == "added"]
    assert any(c["scope"] == "node node-d of cluster prod" for c in added)
    assert any(
        "node-d's pods" in c["subject"] and c["scope"].startswith("node node-a") for c in added
    )
    assert not any(
        c["layer"] == "setting" and "node-a" in c["subject"] for c in document["changes"]
    ), "another node's subnet changed"


def test_github_format_annotates_the_changed_line(tmp_path):
    changed = CLUSTER.replace("deny 22, 10250", "deny 22, 10250, 2222")
    result = _plan(tmp_path, CLUSTER, changed, "--format", "github")
    assert result.stdout.startswith(f"::notice file={tmp_path / 'cluster.netdsl'},line=")


def _git_revision(tmp_path, text):
    """A git repository holding `text` as cluster.netdsl, committed (HEAD)."""

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "cluster.netdsl").write_text(text)
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")


def test_against_a_git_revision(tmp_path):
    _git_revision(tmp_path, CLUSTER)
    (tmp_path / "cluster.netdsl").write_text(CLUSTER.replace("block 3", "block 9"))
    result = CliRunner().invoke(
        main, ["plan", str(tmp_path / "cluster.netdsl"), "--against", "HEAD"]
    )
    assert result.exit_code == 0, result.output
    assert "10.244.9.0/24" in result.stdout


@pytest.mark.parametrize("args", [("--format", "github"), ("--detailed-exitcode",)])
def test_options_of_the_change_plan_need_against(args):
    result = CliRunner().invoke(main, ["plan", str(ROOT / "examples" / "pods.netdsl"), *args])
    assert result.exit_code != 0


def test_a_pod_cidr_change_says_it_breaks_running_pods(tmp_path, monkeypatch, golden):
    """Running pods keep their addresses; the gateway, NAT and routes
    serving them leave the plan, and the change plan says so before anything else."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "cluster.netdsl").write_text(CLUSTER)
    (tmp_path / "cluster.netdsl").write_text(CLUSTER.replace("10.244.0.0/16", "10.200.0.0/16"))
    result = CliRunner().invoke(main, ["plan", "cluster.netdsl", "--against", "old"])
    assert result.exit_code == 0, result.output
    golden.check("golden/changes/pod-cidr.txt", result.stdout)


def test_what_breaks_running_pods_is_marked_in_the_document(tmp_path):
    changed = CLUSTER.replace("10.244.0.0/16", "10.200.0.0/16")
    document = json.loads(_plan(tmp_path, CLUSTER, changed, "--format", "json").stdout)
    breaking = {
        (c["scope"], c["action"], c["subject"])
        for c in document["changes"]
        if c["breaks_running_pods"]
    }
    node_a = "node node-a of cluster prod"
    assert (node_a, "removed", "gateway 10.244.1.1/24 on cni0") in breaking
    assert (
        node_a,
        "removed",
        "route to node-b's pods 10.244.2.0/24 via 192.168.10.12 (direct)",
    ) in breaking
    assert (node_a, "changed", "running pods of network pods") in breaking
    assert not any(action == "added" for _, action, _ in breaking), breaking
    assert document["breaking_count"] == len(breaking)
    github = _plan(tmp_path, CLUSTER, changed, "--format", "github").stdout
    assert github.count("::warning") == len(breaking)


def test_changes_running_pods_survive_are_not_marked(tmp_path):
    changed = CLUSTER.replace("        gateway\n", "        mtu 1400\n        gateway\n", 1)
    changed = changed.replace("deny 22, 10250", "deny 22, 10250, 2222")
    result = _plan(tmp_path, CLUSTER, changed)
    assert "break" not in result.stdout.lower(), result.stdout
    document = json.loads(_plan(tmp_path, CLUSTER, changed, "--format", "json").stdout)
    assert document["breaking_count"] == 0


def test_a_renamed_bridge_breaks_the_pods_attached_to_the_old_one(tmp_path):
    changed = (ROOT / "examples" / "pods.netdsl").read_text().replace("cni0", "cni1")
    document = json.loads(
        _plan(
            tmp_path, (ROOT / "examples" / "pods.netdsl").read_text(), changed, "--format", "json"
        ).stdout
    )
    breaking = [c for c in document["changes"] if c["breaks_running_pods"]]
    assert any(c["subject"].startswith("bridge cni0") for c in breaking), breaking
    assert "cni0" in breaking[0]["breaks_running_pods"]


def test_removed_lines_cite_the_old_revision(tmp_path):
    """node-b's block was at line 15 of HEAD; line 15 is node-c's now."""
    _git_revision(tmp_path, CLUSTER)
    without_b = CLUSTER.replace(
        CLUSTER[CLUSTER.index("    node node-b {") : CLUSTER.index("    node node-c {")], ""
    )
    (tmp_path / "cluster.netdsl").write_text(without_b)
    result = CliRunner().invoke(
        main, ["plan", str(tmp_path / "cluster.netdsl"), "--against", "HEAD", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    route = next(
        c
        for c in json.loads(result.stdout)["changes"]
        if c["action"] == "removed" and "node-b's pods 10.244.2.0/24" in c["subject"]
    )
    assert route["source"] is None
    assert (route["old_source"]["file"], route["old_source"]["line"]) == ("HEAD:cluster.netdsl", 15)
    text = (
        CliRunner()
        .invoke(main, ["plan", str(tmp_path / "cluster.netdsl"), "--against", "HEAD"])
        .stdout
    )
    assert "was HEAD:cluster.netdsl:15:5" in text
    assert "cluster.netdsl:15:5" not in text.replace("HEAD:cluster.netdsl:15:5", "")


def test_removed_lines_cite_the_old_directory_and_annotate_no_new_line(tmp_path):
    changed = CLUSTER.replace("deny 22, 10250", "deny 22")
    document = json.loads(_plan(tmp_path, CLUSTER, changed, "--format", "json").stdout)
    (removed,) = [c for c in document["changes"] if c["subject"] == "hostport.deny[10250]"]
    old = tmp_path / "old" / "cluster.netdsl"
    assert (removed["old_source"]["file"], removed["old_source"]["line"]) == (str(old), 36)
    github = _plan(tmp_path, CLUSTER, changed, "--format", "github").stdout
    assert github.startswith("::notice::network pods: hostport.deny[10250]"), github
    assert f"was {old}:36:" in github


BATCH = "network batch {\n    bridge br-batch\n    ipam { subnet 10.20.0.0/24 }\n}\n"


def test_a_new_network_that_becomes_the_nodes_default_is_called_out(tmp_path):
    """`10-batch.conflist` sorts before `10-pods.conflist`: new pods would go to batch."""
    document = json.loads(_plan(tmp_path, CLUSTER, CLUSTER + BATCH, "--format", "json").stdout)
    (default,) = [c for c in document["changes"] if c["subject"] == "default network"]
    assert (default["old"], default["new"]) == (
        "pods (10-pods.conflist)",
        "batch (10-batch.conflist)",
    )
    assert "new pods attach to `batch`" in default["effect"]


def test_a_network_behind_the_default_changes_no_default(tmp_path):
    behind = BATCH.replace("    bridge", "    priority 20\n    bridge")
    document = json.loads(_plan(tmp_path, CLUSTER, CLUSTER + behind, "--format", "json").stdout)
    assert not [c for c in document["changes"] if c["subject"] == "default network"]
