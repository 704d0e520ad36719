"""Issue 22, items 6 to 8: whoever controls a CI job's parameters or the files it reads.

`netc plan --against`, `netc import` and `netc build --out` run in pipelines
on values and files others chose: a revision name, a conflist's file name,
an output directory that already holds files.  None of them may become an
option of another program, text of the generated `.netdsl`, or a file netc
writes or reads outside the directory it was given.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from runtime.cli import main
from tests.support import ROOT

PODS = (ROOT / "examples" / "pods.netdsl").read_text()


def _repository(directory: Path) -> Path:
    """A git repository holding pods.netdsl, committed; the file's path."""
    subprocess.run(["git", "init", "-q", str(directory)], check=True)
    source = directory / "pods.netdsl"
    source.write_text(PODS)
    subprocess.run(["git", "-C", str(directory), "add", "."], check=True)
    subprocess.run(["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "pods"], check=True)
    return source


def test_a_revision_is_never_an_option_of_git(tmp_path):
    """`--against=--output=FILE` made `git show` write FILE:pods.netdsl."""
    source = _repository(tmp_path / "repo")
    result = CliRunner().invoke(main, ["plan", str(source),
                                       f"--against=--output={tmp_path / 'written'}"])
    assert result.exit_code == 2, result.output
    assert "--against" in result.output
    assert not list(tmp_path.glob("written*")), "git wrote a file"


def test_a_revision_is_still_read_from_git(tmp_path):
    source = _repository(tmp_path / "repo")
    result = CliRunner().invoke(main, ["plan", str(source), "--against", "HEAD"])
    assert result.exit_code == 0, result.output
    assert "No changes" in result.stdout
