"""`netc build --out` owns what it wrote there -- and nothing else.

A conflist netc wrote and no longer builds (a renamed network, a changed
priority, a removed network) goes with the next build, and `--check` counts
it as drift; files netc did not write are never touched.
"""

import json

import pytest
from click.testing import CliRunner

from runtime.cli import main
from runtime.outdir import MANIFEST

SOURCE = """
network {name} {{
    priority {priority}
    bridge {bridge} {{ gateway }}
    ipam {{ subnet {subnet} }}
}}
"""


def _source(tmp_path, *networks):
    text = "".join(
        SOURCE.format(name=n, priority=p, bridge=f"br-{n}", subnet=s) for n, p, s in networks
    )
    path = tmp_path / "cluster.netdsl"
    path.write_text(text)
    return str(path)


def _build(source, out, *extra):
    return CliRunner().invoke(main, ["build", source, "--out", str(out), *extra])


@pytest.fixture
def out(tmp_path):
    directory = tmp_path / "net.d"
    directory.mkdir()
    (directory / "99-loopback.conf").write_text('{"type": "loopback"}\n')  # not netc's
    return directory


def _names(directory):
    return sorted(p.name for p in directory.iterdir() if p.name != MANIFEST)


@pytest.mark.parametrize(
    "change",
    [
        ("pods", 5, "10.1.0.0/24"),  # priority 10 -> 5: 10-pods -> 05-pods
        ("web", 10, "10.1.0.0/24"),  # renamed: 10-pods -> 10-web
    ],
)
def test_a_file_netc_no_longer_builds_is_drift_then_removed(tmp_path, out, change):
    assert _build(_source(tmp_path, ("pods", 10, "10.1.0.0/24")), out).exit_code == 0
    source = _source(tmp_path, change)
    check = _build(source, out, "--check")
    assert check.exit_code == 1
    assert f"would remove {out / '10-pods.conflist'}" in check.stdout
    assert _names(out) == ["10-pods.conflist", "99-loopback.conf"]
    written = _build(source, out)
    assert written.exit_code == 0
    assert f"removed {out / '10-pods.conflist'}" in written.stderr
    assert _names(out) == sorted([f"{change[1]:02d}-{change[0]}.conflist", "99-loopback.conf"])
    assert _build(source, out, "--check").exit_code == 0


def test_a_removed_network_goes_and_foreign_files_stay(tmp_path, out):
    both = _source(tmp_path, ("a", 10, "10.1.0.0/24"), ("b", 20, "10.2.0.0/24"))
    assert _build(both, out).exit_code == 0
    foreign = (out / "99-loopback.conf").read_text()
    assert _build(_source(tmp_path, ("a", 10, "10.1.0.0/24")), out).exit_code == 0
    assert _names(out) == ["10-a.conflist", "99-loopback.conf"]
    assert (out / "99-loopback.conf").read_text() == foreign
    manifest = json.loads((out / MANIFEST).read_text())
    assert list(manifest["files"]) == ["10-a.conflist"]


def test_a_file_edited_since_netc_wrote_it_stops_the_build(tmp_path, out, golden):
    """After a priority change, the old file -- edited by hand, so netc
    does not remove it -- would sort first and keep the node on the old network."""
    assert _build(_source(tmp_path, ("pods", 20, "10.1.0.0/24")), out).exit_code == 0
    (out / "20-pods.conflist").write_text('{"edited": true}\n')
    manifest = (out / MANIFEST).read_text()
    source = _source(tmp_path, ("pods", 30, "10.1.0.0/24"))
    result = _build(source, out)
    assert result.exit_code == 1
    golden.check("golden/build/edited-since-written.txt", result.stderr.replace(str(out), "NET_D"))
    assert _names(out) == ["20-pods.conflist", "99-loopback.conf"], "nothing is written"
    assert (out / "20-pods.conflist").read_text() == '{"edited": true}\n'
    assert (out / MANIFEST).read_text() == manifest, "netc still knows it wrote the file"
    again = _build(source, out)
    assert again.exit_code == 1, "refused until someone decides"
    check = _build(source, out, "--check")
    assert check.exit_code == 1
    assert "20-pods.conflist" in check.stderr and "edited" in check.stderr
    (out / "20-pods.conflist").unlink()
    assert _build(source, out).exit_code == 0
    assert _names(out) == ["30-pods.conflist", "99-loopback.conf"]


def test_an_edited_file_in_the_json_document(tmp_path, out):
    assert _build(_source(tmp_path, ("pods", 10, "10.1.0.0/24")), out).exit_code == 0
    (out / "10-pods.conflist").write_text('{"edited": true}\n')
    result = _build(_source(tmp_path, ("web", 10, "10.1.0.0/24")), out, "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["files"] == {
        str(out / "10-pods.conflist"): "edited since written",
        str(out / "10-web.conflist"): "would be created",
    }
    assert "10-pods.conflist" in document["refused"]
    assert not (out / "10-web.conflist").exists()


def test_building_one_network_leaves_the_others_files(tmp_path, out):
    both = _source(tmp_path, ("a", 10, "10.1.0.0/24"), ("b", 20, "10.2.0.0/24"))
    assert _build(both, out).exit_code == 0
    assert _build(both, out, "--network", "b").exit_code == 0
    assert _names(out) == ["10-a.conflist", "20-b.conflist", "99-loopback.conf"]
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == [
        "10-a.conflist",
        "20-b.conflist",
    ]


def test_a_directory_without_a_manifest_loses_nothing(tmp_path, out):
    (out / "10-pods.conflist").write_text("{}\n")  # written by hand, or by an older netc
    result = _build(_source(tmp_path, ("web", 10, "10.1.0.0/24")), out)
    assert result.exit_code == 0
    assert _names(out) == ["10-pods.conflist", "10-web.conflist", "99-loopback.conf"]
