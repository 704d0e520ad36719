"""`netc import` from the command line: files, directories, stdin, --out, exit codes."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner, Result

from runtime.cli import main
from tests.conftest import TESTS

CASES = TESTS / "golden" / "import"
PODMAN = CASES / "podman-default" / "87-podman-bridge.conflist"


def netc(*args: str, stdin: bytes = b"") -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


@pytest.fixture
def node(tmp_path):
    """A copy of a node's /etc/cni/net.d, with a file runtimes do not load."""
    directory = tmp_path / "net.d"
    directory.mkdir()
    for case in ("podman-default", "crio"):
        for path in (CASES / case).glob("*.conflist"):
            shutil.copy(path, directory)
    (directory / "cni.lock").write_text("")
    return directory


def test_a_file_is_printed_with_its_findings_and_a_summary():
    result = netc("import", str(PODMAN))
    assert result.exit_code == 0
    golden = (CASES / "podman-default" / "imported.netdsl").read_text()
    assert result.stdout == golden.replace("podman-default/", f"{CASES}/podman-default/")
    assert result.stderr.splitlines() == [
        f"{PODMAN}: note: netc build --out writes this network to 87-podman.conflist",
        "netc import: 1 network from 1 file (0 errors, 0 warnings, 1 note)",
    ]


def test_a_directory_stands_for_its_configuration_files_in_order(node):
    result = netc("import", str(node))
    assert result.exit_code == 0
    assert result.stdout.index("network crio {") < result.stdout.index("network podman {")
    assert "netc import: 2 networks from 2 files" in result.stderr


def test_out_writes_the_file_and_keeps_an_existing_one(node, tmp_path):
    out = tmp_path / "node.netdsl"
    assert netc("import", str(node), "--out", str(out)).exit_code == 0
    assert f"wrote {out}" in netc("import", str(node), "--out", str(out), "--force").stderr
    out.write_text("# mine\n")
    refused = netc("import", str(node), "--out", str(out))
    assert refused.exit_code == 2 and "add --force to replace it" in refused.stderr
    assert out.read_text() == "# mine\n"


def test_the_written_file_builds_back_to_the_conflists(node, tmp_path):
    out, built = tmp_path / "node.netdsl", tmp_path / "built"
    netc("import", str(node), "--out", str(out))
    assert netc("build", str(out), "--out", str(built)).exit_code == 0
    for name, original in (
        ("11-crio.conflist", "11-crio-ipv4-bridge.conflist"),
        ("87-podman.conflist", "87-podman-bridge.conflist"),
    ):
        assert json.loads((built / name).read_text()) == json.loads((node / original).read_text())


def test_standard_input_is_named_stdin():
    conflist = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "lan",
            "plugins": [{"type": "macvlan", "master": "eth0", "runtimeConfig": {"mac": "x"}}],
        }
    )
    result = netc("import", "-", stdin=conflist.encode())
    assert result.exit_code == 0
    assert result.stdout.startswith("# imported from <stdin>\nnetwork lan {\n")
    assert result.stderr.startswith("<stdin>: $.plugins[0].runtimeConfig: warning: ")


def test_a_file_that_cannot_be_imported_writes_nothing_and_exits_1(tmp_path):
    broken = tmp_path / "broken.conflist"
    broken.write_bytes(b'{"name": "x", "plugins": []}')
    result = netc("import", str(PODMAN), str(broken))
    assert result.exit_code == 1 and result.stdout == ""
    assert f"{broken}: $.plugins: error: expected a non-empty list of plugins" in result.stderr


def test_networks_netc_refuses_are_written_with_the_diagnostics(tmp_path):
    for name in ("a", "b"):
        document = {
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": f"10.{ord(name)}.0.0/24"}]],
                    },
                }
            ],
        }
        (tmp_path / f"{name}.conflist").write_text(json.dumps(document))
    out = tmp_path / "node.netdsl"
    result = netc(
        "import", str(tmp_path / "a.conflist"), str(tmp_path / "b.conflist"), "--out", str(out)
    )
    assert result.exit_code == 1
    assert "network b {" in out.read_text()
    assert f"{out}:" in result.stderr and "error[E105]: bridge cni0 is used by networks" in (
        result.stderr
    )


def test_a_directory_without_configuration_files_is_a_usage_error(tmp_path):
    result = netc("import", str(tmp_path))
    assert result.exit_code == 2 and "holds no .conf, .conflist or .json file" in result.stderr


EXTRAS = CASES / "stock-extras"


def test_import_then_build_gives_the_same_json(tmp_path):
    """The round trip through the command line, byte for byte in meaning."""
    out = tmp_path / "node.netdsl"
    imported = netc("import", str(EXTRAS / "10-vlan.conflist"), "--out", str(out))
    assert imported.exit_code == 0, imported.output
    assert "warning:" not in imported.stderr and "0 warnings" in imported.stderr
    built = netc("build", str(out), "--target", "reference")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout) == json.loads((EXTRAS / "10-vlan.conflist").read_text())


def test_strict_refuses_what_would_not_come_back_and_writes_nothing(tmp_path):
    conflist = {
        "cniVersion": "1.0.0",
        "name": "pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]},
            },
            {"type": "sbr", "runtimeConfig": {"x": 1}},
        ],
    }
    source = tmp_path / "10-pods.conflist"
    source.write_text(json.dumps(conflist))
    out = tmp_path / "node.netdsl"
    assert netc("import", str(source), "--out", str(out)).exit_code == 0
    out.unlink()
    strict = netc("import", str(source), "--out", str(out), "--strict")
    assert strict.exit_code == 1
    assert "$.plugins[1].runtimeConfig: warning" in strict.stderr
    assert "--strict: 1 value would not come back the same: nothing written" in strict.stderr
    assert not out.exists()
    exact = netc("import", str(EXTRAS / "10-vlan.conflist"), "--strict")
    assert exact.exit_code == 0 and "network vlan100 {" in exact.stdout
