"""Every command of the README works as written.

Each block runs in a directory of its own: a copy of the checkout whose
`cluster/` holds examples/cluster.netdsl, as the README says.  The system
paths it names (/etc/cni/net.d, /opt/cni/bin, /opt/netc, /tmp/net.d, ~) move
under tmp_path; nothing is written to the host's.  What needs root and a node
-- `netc apply`, `netc run`, `netc plan --live` -- is parsed, not run: its
options must exist, its values be valid and its files be there.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runtime.cli import main
from tests.support import ROOT

README = (ROOT / "README.md").read_text()
SYSTEM_PATHS = ("/etc/cni/net.d", "/opt/cni/bin", "/opt/netc", "/tmp/net.d")
"""Where the README names the node's directories; tests use their own."""
NEEDS_A_NODE = ("apply", "run")
"""Subcommands that change a node: checked for their form only (as is `plan --live`)."""
NETC = re.compile(r"^(?:\S*/)?netc ")


def block(after: str) -> list[str]:
    """The lines of the first code block after the text `after`, without indentation."""
    start = README.index(after)
    text = re.search(r"```\n(.*?)```", README[start:], re.S)
    assert text is not None, after
    return [line.strip() for line in text.group(1).splitlines() if line.strip()]


@dataclass
class Line:
    """A command line of the README: the command and what its comment says."""

    command: str
    comment: str

    @classmethod
    def of(cls, text: str) -> Line:
        command, _, comment = text.partition("  #")
        return cls(command.strip(), comment.strip())


class Sandbox:
    """A checkout with cluster/prod.netdsl, a home and the node's directories under tmp."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.work = tmp_path / "netc"
        shutil.copytree(
            ROOT,
            self.work,
            ignore=shutil.ignore_patterns(
                ".*", "__pycache__", "*.egg-info", "build", "dist", "tests", "bench", "docs"
            ),
        )
        (self.work / "cluster").mkdir()
        shutil.copy(ROOT / "examples" / "cluster.netdsl", self.work / "cluster" / "prod.netdsl")
        self.root = tmp_path / "root"
        self.home = tmp_path / "home"
        self.home.mkdir()
        conf = self.moved("/etc/cni/net.d")
        conf.mkdir(parents=True)
        shutil.copy(
            ROOT / "tests" / "golden" / "import" / "podman-default" / "87-podman-bridge.conflist",
            conf,
        )
        monkeypatch.chdir(self.work)  # where the README's relative paths are

    def moved(self, system_path: str) -> Path:
        return self.root / system_path.lstrip("/")

    def rewrite(self, command: str) -> str:
        for path in SYSTEM_PATHS:
            command = command.replace(path, str(self.moved(path)))
        return command

    def shell(self, command: str) -> None:
        """A shell line (not netc's own), run with bash in the checkout."""
        environment = {
            **os.environ,
            "HOME": str(self.home),  # pip's cache stays the user's
            "PIP_CACHE_DIR": os.environ.get(
                "PIP_CACHE_DIR", str(Path("~/.cache/pip").expanduser())
            ),
        }
        done = subprocess.run(
            ["bash", "-ec", self.rewrite(command)],
            cwd=self.work,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)

    def netc(self, line: Line) -> None:
        """A netc command: run in this process, or parsed where it needs a node."""
        words = shlex.split(self.rewrite(line.command))[1:]
        stdin = None
        if "<" in words:
            stdin = (self.work / words[words.index("<") + 1]).read_text()
            words = words[: words.index("<")]
        if ">" in words:
            words = words[: words.index(">")]
        words = [
            item
            for word in words
            for item in (sorted(glob.glob(word, root_dir=self.work)) if "*" in word else [word])
        ]
        if words[0] in NEEDS_A_NODE or "--live" in words:
            parent = click.Context(main, info_name="netc")
            command = main.get_command(parent, words[0])
            assert command is not None, line
            command.make_context(words[0], words[1:], parent=parent)
            return
        result = CliRunner().invoke(main, words, input=stdin)
        assert result.exit_code == 0, (line, result.output)
        self.check_out_dir(words, line)

    def check_out_dir(self, words: list[str], line: Line) -> None:
        """`build --out DIR` writes conflists a runtime reads: into DIR itself, unless the
        README says that this line writes every node's into DIR/NODE/."""
        if words[0] != "build" or "--out" not in words or "NODE/" in line.comment:
            return
        out = self.work / words[words.index("--out") + 1]
        assert not [p for p in out.iterdir() if p.is_dir()], (line, sorted(out.iterdir()))
        assert list(out.glob("*.conflist")), line

    def run(self, lines: list[str]) -> None:
        for text in lines:
            line = Line.of(text)
            if NETC.match(line.command) and "&&" not in line.command:
                self.netc(line)
            else:
                self.shell(line.command)


def test_the_install_on_an_admins_machine(tmp_path, monkeypatch):
    """From the checkout, into a home without ~/.local/bin yet."""
    sandbox = Sandbox(tmp_path, monkeypatch)
    sandbox.run(block("**An admin's machine or CI**"))
    version = subprocess.run(
        [str(sandbox.home / ".local" / "bin" / "netc"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("netc, version")


def test_a_node_by_hand(tmp_path, monkeypatch):
    """The install, the launcher, node-a's conflists where runtimes read them; the apply
    (root, on the node itself) is parsed only."""
    sandbox = Sandbox(tmp_path, monkeypatch)
    lines = block("**A node by hand**")
    assert any("netc apply" in line for line in lines), "a cluster's node needs netc apply"
    for text in lines:
        line = Line.of(text)
        if " apply " in line.command:  # the installed netc is this code: parsed here
            sandbox.netc(line)
        else:
            sandbox.shell(line.command)
    conf = sandbox.moved("/etc/cni/net.d")
    assert sorted(p.name for p in conf.iterdir()) == [
        ".netc-owned",
        "10-pods.conflist",
        "87-podman-bridge.conflist",
    ]
    assert (sandbox.moved("/opt/cni/bin") / "netc-cni").exists()


@pytest.mark.parametrize("title", ["## Moving a node to netc", "## Using netc"])
def test_the_commands_of_a_section(tmp_path, monkeypatch, title):
    sandbox = Sandbox(tmp_path, monkeypatch)
    sandbox.shell(
        f"{sys.executable} -m runtime.cli build --node node-a cluster/prod.netdsl > net.conflist"
    )  # `netc run`'s conflist
    sandbox.run(block(title))
