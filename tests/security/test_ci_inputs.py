"""Whoever controls a CI job's parameters or the files it reads.

`netc plan --against`, `netc import` and `netc build --out` run in pipelines
on values and files others chose: a revision name, a conflist's file name,
an output directory that already holds files.  None of them may become an
option of another program, text of the generated `.netdsl`, or a file netc
writes or reads outside the directory it was given.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from runtime import outdir
from runtime.cli import main
from runtime.cli.build import MANIFEST_FILE
from tests.support import ROOT

PODS = (ROOT / "examples" / "pods.netdsl").read_text()


def _repository(directory: Path) -> Path:
    """A git repository holding pods.netdsl, committed; the file's path."""
    subprocess.run(["git", "init", "-q", str(directory)], check=True)
    source = directory / "pods.netdsl"
    source.write_text(PODS)
    subprocess.run(["git", "-C", str(directory), "add", "."], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(directory),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "pods",
        ],
        check=True,
    )
    return source


def test_a_revision_is_never_an_option_of_git(tmp_path):
    """`--against=--output=FILE` made `git show` write FILE:pods.netdsl."""
    source = _repository(tmp_path / "repo")
    result = CliRunner().invoke(
        main, ["plan", str(source), f"--against=--output={tmp_path / 'written'}"]
    )
    assert result.exit_code == 2, result.output
    assert "--against" in result.output
    assert not list(tmp_path.glob("written*")), "git wrote a file"


def test_a_revision_is_still_read_from_git(tmp_path):
    source = _repository(tmp_path / "repo")
    result = CliRunner().invoke(main, ["plan", str(source), "--against", "HEAD"])
    assert result.exit_code == 0, result.output
    assert "No changes" in result.stdout


CONTAINERD = ROOT / "tests" / "golden" / "import" / "containerd" / "10-containerd-net.conflist"
SECRET = {
    "cniVersion": "1.0.0",
    "name": "secret",
    "plugins": [{"type": "macvlan", "master": "eth0", "token": "s3cr3t-token"}],
}
INJECTED = '\nnetwork evil {\n    priority 1\n    plugin macvlan { master "eth0" }\n}\n#'


def _import(*args: str) -> Result:
    return CliRunner().invoke(main, ["import", *args])


def test_a_file_name_cannot_inject_statements(tmp_path):
    """A file name's newlines ended the `# imported from` comment: `evil` became a network."""
    directory = tmp_path / "net.d"
    directory.mkdir()
    (directory / f"10-containerd-net{INJECTED}.conflist").write_bytes(CONTAINERD.read_bytes())
    result = _import(str(directory), "--out", str(tmp_path / "node.netdsl"))
    assert result.exit_code == 0, result.output
    written = (tmp_path / "node.netdsl").read_text()
    compilation = compile_sources([SourceFile("node.netdsl", written)])
    assert [n.name for n in compilation.networks] == ["containerd-net"], written
    assert "\\nnetwork evil {" in written  # the name is there, escaped, in the comment


def _deep(depth: int) -> str:
    return (
        '{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "macvlan", "deep": '
        + "[" * depth
        + "]" * depth
        + "}]}"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_deep(100_000), "nested more than 32 deep"),
        (_deep(500), "nested more than 32 deep"),
        (_deep(40), "nested more than 32 deep"),
        (
            '{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge", "mtu": 1e400}]}',
            "1e400",
        ),
    ],
    ids=["100000-deep", "500-deep", "40-deep", "1e400"],
)
def test_hostile_json_is_an_error_naming_the_file(tmp_path, content, reason):
    source = tmp_path / "10-x.conflist"
    source.write_text(content)
    result = _import(str(source))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{source}" in result.stderr and reason in result.stderr


def test_a_symbolic_link_in_an_input_directory_is_not_followed(tmp_path):
    """A link to a JSON file elsewhere (a token, a registry secret) would land in the output."""
    elsewhere = tmp_path / "secret.json"
    elsewhere.write_text(json.dumps(SECRET))
    directory = tmp_path / "net.d"
    directory.mkdir()
    (directory / "10-containerd-net.conflist").write_bytes(CONTAINERD.read_bytes())
    (directory / "20-link.conflist").symlink_to(elsewhere)
    result = _import(str(directory))
    assert result.exit_code == 0, result.output
    assert "s3cr3t-token" not in result.stdout
    assert "20-link.conflist" in result.stderr and "symbolic link" in result.stderr


def test_out_is_no_more_readable_than_the_inputs(tmp_path):
    source = tmp_path / "10-containerd-net.conflist"
    source.write_bytes(CONTAINERD.read_bytes())
    source.chmod(0o600)
    result = _import(str(source), "--out", str(tmp_path / "node.netdsl"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "node.netdsl").stat().st_mode & 0o777 == 0o600


def _build(*args: str) -> Result:
    return CliRunner().invoke(main, ["build", *args])


def _pods(tmp_path: Path) -> Path:
    source = tmp_path / "pods.netdsl"
    source.write_text(PODS)
    return source


def test_a_foreign_file_with_netcs_name_is_never_overwritten(tmp_path):
    out = tmp_path / "net.d"
    out.mkdir()
    foreign = out / "10-pods.conflist"
    foreign.write_text('{"name": "someone else\'s"}')
    result = _build(str(_pods(tmp_path)), "--target", "netc", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert foreign.read_text() == '{"name": "someone else\'s"}'
    assert str(foreign) in result.stderr and "did not write" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["10-pods.conflist"]


def test_the_same_content_already_there_is_adopted(tmp_path):
    """A conflist netc would write, byte for byte, is no foreign file: it is recorded as netc's."""
    out = tmp_path / "net.d"
    assert _build(str(_pods(tmp_path)), "--target", "netc", "--out", str(out)).exit_code == 0
    (out / ".netc-owned").unlink()
    result = _build(str(_pods(tmp_path)), "--target", "netc", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "10-pods.conflist" in (out / ".netc-owned").read_text()


def test_a_manifest_entry_cannot_name_a_file_outside_the_directory(tmp_path):
    """`.netc-owned` listing `../victim.txt` with its digest made build remove that file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "net.d"
    out.mkdir()
    (out / ".netc-owned").write_text(
        json.dumps(
            {
                "format": 1,
                "files": {
                    "../victim.txt": {"network": "pods", "digest": outdir.digest("precious\n")}
                },
            }
        )
    )
    result = _build(str(_pods(tmp_path)), "--target", "netc", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n"
    assert "victim" not in (out / ".netc-owned").read_text()


def test_check_never_reads_through_a_symbolic_link_at_an_output_name(tmp_path):
    """A link at the output name printed its target's content into the CI log."""
    secret = tmp_path / "environ"
    secret.write_text("AWS_SECRET_ACCESS_KEY=hunter2\n")
    out = tmp_path / "deploy"
    out.mkdir()
    (out / MANIFEST_FILE).symlink_to(secret)
    source = tmp_path / "cluster.netdsl"
    source.write_text((ROOT / "examples" / "cluster.netdsl").read_text())
    result = _build(str(source), "--target", "kubernetes", "--out", str(out), "--check")
    assert result.exit_code == 1, result.output
    assert "hunter2" not in result.output
    assert "symbolic link" in result.stderr
    assert (out / MANIFEST_FILE).is_symlink()


def test_a_symbolic_link_in_the_output_path_leads_no_write_elsewhere(tmp_path):
    """A node folder of `--out DIR` (DIR/NODE/) linked elsewhere is not written through."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "net.d"
    out.mkdir()
    (out / "node-a").symlink_to(elsewhere)
    source = tmp_path / "cluster.netdsl"
    source.write_text((ROOT / "examples" / "cluster.netdsl").read_text())
    result = _build(str(source), "--target", "netc", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert list(elsewhere.iterdir()) == []
    assert "symbolic link" in result.stderr
