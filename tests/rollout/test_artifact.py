"""The plugin artifact the agent installs on hosts, run as a runtime runs it (no root needed).

A shell line, the launcher, then netc's modules (runtime/artifact.py): the
same bytes from the same code in any process; netc's modules imported from
it as byte code, or compiled from their source on another Python; VERSION answered by the
launcher without importing netc; a CNI error with code 107 when the host has
no python3 (from the shell line) or one older than 3.10 (from the launcher).
And the warm server's side of running from the image: its children, in the
host's mount namespace, must find every module imported already.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.errors import Code
from compiler.versions import CNI_VERSIONS
from runtime import launcher
from runtime.artifact import plugin_artifact
from runtime.install import package_files
from tests.support import ROOT, python_of

PYTHON_3_9 = python_of((3, 9))
ANOTHER_PYTHON = python_of((3, 12)) or python_of((3, 10))
HOST_PYTHON = Path("/usr/bin/python3")
BUILD = (
    "import sys; from runtime.artifact import plugin_artifact; "
    "sys.stdout.buffer.write(plugin_artifact({socket!r}))"
)


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "netc-cni"
    path.write_bytes(content)
    path.chmod(0o755)
    return path


def _call(plugin: Path, command: str, stdin: str = "{}") -> tuple[int, dict]:
    """The plugin executed as a runtime executes it: by path, a CNI environment, stdin."""
    done = subprocess.run(
        [str(plugin)],
        input=stdin,
        capture_output=True,
        text=True,
        env={"CNI_COMMAND": command, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("before", ["", "import pytest, yaml, lark, click, json, asyncio; "])
def test_the_same_code_gives_the_same_artifact_in_any_process(tmp_path, before):
    """Built in a fresh interpreter, with or without much else imported, and here."""
    socket = str(tmp_path / "cni.sock")
    other = subprocess.run(
        [sys.executable, "-c", before + BUILD.format(socket=socket)],
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert other == plugin_artifact(socket)
    assert plugin_artifact(socket) != plugin_artifact(str(tmp_path / "other.sock"))


@pytest.mark.skipif(not HOST_PYTHON.exists(), reason=f"no {HOST_PYTHON}")
def test_version_is_answered_in_the_version_asked(tmp_path):
    plugin = _write(tmp_path, plugin_artifact(str(tmp_path / "no-server.sock")))
    status, answer = _call(plugin, "VERSION", '{"cniVersion": "0.4.0"}')
    assert status == 0
    assert answer == {"cniVersion": "0.4.0", "supportedVersions": list(CNI_VERSIONS)}


@pytest.mark.skipif(not HOST_PYTHON.exists(), reason=f"no {HOST_PYTHON}")
def test_version_imports_nothing_of_netc(tmp_path):
    timing = tmp_path / "python3"  # the host's python3, reporting its imports
    timing.write_text(f'#!/bin/sh\nexec {HOST_PYTHON} -X importtime "$@"\n')
    timing.chmod(0o755)
    plugin = _write(
        tmp_path, plugin_artifact(str(tmp_path / "no-server.sock"), interpreters=(str(timing),))
    )
    done = subprocess.run(
        [str(plugin)],
        input="{}",
        capture_output=True,
        text=True,
        check=True,
        env={"CNI_COMMAND": "VERSION"},
    )
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "encodings" in imported, "no import report: the test measures nothing"
    assert not {m for m in imported if m.split(".")[0] in ("runtime", "compiler")}


def test_the_modules_come_from_the_artifact_as_byte_code_or_compiled_from_source(tmp_path):
    """This interpreter's magic number: the builder's byte code; another's: the source."""
    plugin = _write(tmp_path, plugin_artifact(None))
    descriptor = os.open(plugin, os.O_RDONLY)
    try:
        archive = launcher.Archive(descriptor)
        sources = dict(package_files())
        assert set(archive.modules) >= {"runtime", "runtime.cni.plugin", "compiler.planner.ops"}
        assert archive.compiled
        for name, file in (("runtime.cni.plugin", "runtime/cni/plugin.py"),):
            assert archive.get_source(name) == sources[file].decode()
            from_source = compile(sources[file], file, "exec", dont_inherit=True)
            assert archive.get_code(name) == from_source
            archive.compiled = False  # as on a Python whose magic number differs
            assert archive.get_code(name) == from_source
        spec = archive.find_spec("runtime.cni")
        assert spec is not None and spec.submodule_search_locations == []
        assert archive.find_spec("json") is None, "the standard library is not the artifact's"
    finally:
        os.close(descriptor)


@pytest.mark.skipif(ANOTHER_PYTHON is None, reason="no Python 3.12 or 3.10 on this machine")
@pytest.mark.parametrize("python", [str(HOST_PYTHON), ANOTHER_PYTHON], ids=["host", "another"])
def test_the_plugin_runs_from_the_artifact_on_its_python_and_another(tmp_path, python):
    """netc's modules are imported (or compiled) and the plugin itself answers."""
    plugin = _write(tmp_path, plugin_artifact(None, interpreters=(python,)))
    status, error = _call(plugin, "ADD", '{"cniVersion": "9.9.9"}')
    assert (status, error["code"]) == (1, int(Code.INCOMPATIBLE_VERSION))
    assert error["msg"] == "CNI version 9.9.9 is not supported"


def test_a_host_without_python3_gets_a_cni_error_from_the_shell_line(tmp_path):
    plugin = _write(tmp_path, plugin_artifact(None, interpreters=(str(tmp_path / "python3"),)))
    status, error = _call(plugin, "ADD")
    assert status == 1
    assert error["code"] == int(Code.HOST_UNSUITABLE) == 107
    assert "needs python3 (3.10 or later)" in error["msg"]
    assert str(tmp_path / "python3") in error["msg"]


@pytest.mark.skipif(PYTHON_3_9 is None, reason="no Python 3.9 on this machine")
def test_a_host_python_older_than_3_10_gets_a_cni_error_from_the_launcher(tmp_path):
    plugin = _write(
        tmp_path, plugin_artifact(str(tmp_path / "no-server.sock"), interpreters=(PYTHON_3_9,))
    )
    status, error = _call(plugin, "ADD")
    assert status == 1
    assert error["code"] == 107
    assert "needs Python 3.10 or later on the node, found 3.9.18" in error["msg"]
    assert _call(plugin, "VERSION")[0] == 0  # VERSION works on 3.9: the launcher answers


def _function_imports(path: Path) -> set[str]:
    """The modules a file imports inside functions (imported when the function runs)."""
    found = set()
    for function in ast.walk(ast.parse(path.read_text())):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module)
    return found


def test_the_warm_server_imports_beforehand_what_netc_imports_on_demand():
    """A server child runs in the host's mount namespace, where the image's modules are not:
    every module a loaded netc module imports inside a function is imported by `_preload`."""
    script = (
        "import json, sys; from runtime.cni import server; server._preload(); "
        "print(json.dumps({n: getattr(m, '__file__', None) for n, m in "
        "sys.modules.items()}))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, check=True, cwd=ROOT, text=True
        ).stdout
    )
    netc = [Path(f) for n, f in loaded.items() if f and n.split(".")[0] in ("runtime", "compiler")]
    missing = {
        (str(path.relative_to(ROOT)), module)
        for path in netc
        for module in _function_imports(path)
        if module not in loaded
    }
    assert missing == set()
