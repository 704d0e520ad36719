"""The `netc` commands of the compiler: exit codes, written files, drift checks."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
from click.testing import CliRunner, Result

from runtime.cli import main
from runtime.outdir import MANIFEST
from tests.conftest import TESTS
from tests.support import EXAMPLE_SETS, ROOT

PODS = "examples/pods.netdsl"
MULTI = EXAMPLE_SETS["multi"]
MULTI_FILES = ["10-frontend.conflist", "20-batch.conflist"]
BAD = str(TESTS / "errors" / "bad-cidr.netdsl")
UGLY = str(TESTS / "golden" / "fmt" / "bridge.in.netdsl")


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    """Run from the repository root, so example paths (and names in output) are stable."""
    monkeypatch.chdir(ROOT)


def netc(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def build_into(directory, *args: str) -> Result:
    return netc("build", *MULTI, "--out", str(directory), *args)


def listing(directory) -> list[str]:
    """The conflists of a directory (netc's manifest of what it wrote aside)."""
    return sorted(n for n in os.listdir(directory) if n != MANIFEST)


@pytest.mark.parametrize(
    "args",
    [
        ["check", PODS],
        ["check", *MULTI],
        ["build", PODS],
        ["build", PODS, "--target", "netc", "--cni-version", "0.4.0"],
        ["fmt", "--check", *(str(p.relative_to(ROOT)) for p in ROOT.glob("examples/**/*.netdsl"))],
    ],
)
def test_valid_input_exits_0(args):
    result = netc(*args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["check", BAD],
        ["build", BAD],
        ["build", "examples/k8s-calico-portmap.netdsl", "--target", "netc"],
        ["fmt", "--check", UGLY],
        ["fmt", "--diff", UGLY],
    ],
)
def test_invalid_input_exits_1(args):
    result = netc(*args)
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["check", PODS, "--no-such-option"],
        ["check", "examples/no-such-file.netdsl"],
        ["build", PODS, "--target", "podman"],
        ["build", PODS, "--cni-version", "2.0.0"],
        ["build", PODS, "--check"],
        ["build", PODS, "--network", "no-such-network"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args):
    result = netc(*args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr


def test_check_reports_diagnostics_on_stderr_and_a_summary():
    valid, invalid = netc("check", PODS), netc("check", BAD)
    assert valid.stderr == "1 network valid\n"
    assert invalid.stdout == ""
    assert invalid.stderr.startswith(f"{BAD}:4:16: error[E201]: ")


def test_check_json_of_a_valid_file():
    document = json.loads(netc("check", "--format", "json", PODS).stdout)
    assert (document["valid"], document["error_count"], document["diagnostics"]) == (True, 0, [])


def test_build_prints_what_the_golden_files_hold():
    golden = TESTS / "golden" / "build" / "pods" / "reference-source-default" / "10-pods.conflist"
    assert netc("build", PODS).stdout == golden.read_text()


def test_binary_input_is_an_error_that_quotes_the_line(tmp_path):
    path = tmp_path / "binary.netdsl"
    path.write_bytes(b"network pods {\n    bridge \x00\n}\n")
    result = netc("check", str(path))
    assert result.exit_code == 1
    assert f"{path}:2:12: error[E004]: " in result.stderr
    assert " 2 |     bridge \ufffd" in result.stderr


def test_build_out_writes_one_conflist_per_network(tmp_path):
    result = build_into(tmp_path)
    assert result.exit_code == 0, result.output
    assert listing(tmp_path) == MULTI_FILES
    for name in MULTI_FILES:
        golden = TESTS / "golden" / "build" / "multi" / "reference-source-default" / name
        assert (tmp_path / name).read_text() == golden.read_text()
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
        assert f"wrote {tmp_path / name}" in result.stderr


def test_build_out_creates_the_directory(tmp_path):
    assert build_into(tmp_path / "net.d").exit_code == 0
    assert listing(tmp_path / "net.d") == MULTI_FILES


def test_building_again_leaves_unchanged_files_alone(tmp_path):
    build_into(tmp_path)
    before = {name: (tmp_path / name).stat() for name in MULTI_FILES}
    result = build_into(tmp_path)
    assert result.exit_code == 0
    for name, old in before.items():
        new = (tmp_path / name).stat()
        assert (new.st_ino, new.st_mtime_ns) == (old.st_ino, old.st_mtime_ns)
        assert f"unchanged {tmp_path / name}" in result.stderr


def test_a_changed_conflist_is_replaced_atomically(tmp_path):
    build_into(tmp_path)
    target = tmp_path / "20-batch.conflist"
    target.write_text("{}\n")
    inode = target.stat().st_ino
    result = build_into(tmp_path)
    assert f"wrote {target}" in result.stderr
    assert target.stat().st_ino != inode, "rewritten in place instead of renamed over"
    assert json.loads(target.read_text())["name"] == "batch"
    assert listing(tmp_path) == MULTI_FILES, "a temporary file was left behind"


def test_build_check_passes_when_up_to_date(tmp_path):
    build_into(tmp_path)
    result = build_into(tmp_path, "--check")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "2 conflists up to date" in result.stderr


def test_build_check_shows_a_diff_and_writes_nothing_when_a_file_differs(tmp_path):
    build_into(tmp_path)
    target = tmp_path / "10-frontend.conflist"
    target.write_text(target.read_text().replace('"mtu": 1450', '"mtu": 1500'))
    result = build_into(tmp_path, "--check")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"--- {target}\n+++ {target}\n@@ ")
    assert '-      "mtu": 1500,\n+      "mtu": 1450,\n' in result.stdout
    assert '"mtu": 1500' in target.read_text()
    assert "1 of 2 files would change" in result.stderr


def test_build_check_shows_a_missing_file_as_new(tmp_path):
    build_into(tmp_path)
    (tmp_path / "20-batch.conflist").unlink()
    result = build_into(tmp_path, "--check")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"--- /dev/null\n+++ {tmp_path / '20-batch.conflist'}\n")
    assert listing(tmp_path) == ["10-frontend.conflist"]


def test_network_option_selects_one_network(tmp_path):
    result = build_into(tmp_path, "--network", "batch")
    assert result.exit_code == 0
    assert listing(tmp_path) == ["20-batch.conflist"]


def test_network_option_on_stdout():
    result = netc("build", *MULTI, "--network", "frontend")
    assert json.loads(result.stdout)["name"] == "frontend"


def test_fmt_rewrites_a_file_then_it_is_formatted(tmp_path):
    path = tmp_path / "ugly.netdsl"
    shutil.copy(UGLY, path)
    assert netc("fmt", "--check", str(path)).stdout == f"would reformat {path}\n"
    assert netc("fmt", str(path)).exit_code == 0
    assert path.read_text() == (TESTS / "golden" / "fmt" / "bridge.out.netdsl").read_text()
    assert netc("fmt", "--check", str(path)).exit_code == 0


def test_fmt_diff_prints_a_unified_diff_and_writes_nothing():
    before = (ROOT / UGLY).read_text()
    result = netc("fmt", "--diff", UGLY)
    assert result.stdout.startswith(f"--- {UGLY}\n+++ {UGLY}\n@@ ")
    assert (ROOT / UGLY).read_text() == before
