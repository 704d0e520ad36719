"""The warm launcher is plain, old Python: 3.9's grammar, the standard library only.

A later release ships it to hosts on its own, where the interpreter may be
older than the one netc needs; the warm path must run there (the cold one
imports netc itself).  Running it under a real 3.9 is a root test in
tests/faults/test_warm_server.py.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

from runtime.install import launcher_settings, launcher_text

LAUNCHER = launcher_text("/usr/bin/python3", warm_socket="/run/netc/cni.sock")


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_launcher_parses_as_python_3_9():
    ast.parse(LAUNCHER, feature_version=(3, 9))


def test_the_warm_path_imports_only_the_standard_library():
    tree = ast.parse(LAUNCHER)
    cold = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "cold"
    )
    warm = [node for node in tree.body if node is not cold]
    assert _imports(ast.Module(body=warm, type_ignores=[])) <= sys.stdlib_module_names
    assert _imports(cold) == {"runtime"}


def test_the_launcher_says_which_interpreter_runs_it_and_isolates_it():
    assert LAUNCHER.startswith("#!/usr/bin/python3 -IS\n")


def _assigned(tree: ast.Module) -> list[str]:
    return [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    ]


def test_every_setting_of_the_launcher_module_is_written_and_nothing_else():
    """The settings block of runtime/launcher.py is replaced whole: a setting added to the
    module but not to install.py would keep its neutral value on every node."""
    from runtime import launcher

    source = Path(launcher.__file__).read_text()
    block = source[source.index("# settings:") : source.index("# end of settings")]
    assert sorted(launcher_settings(None, None)) == sorted(_assigned(ast.parse(block)))
    assert "# settings:" not in LAUNCHER and "ROOT = None" not in LAUNCHER


def _imported(script: Path, stdin: bytes) -> set[str]:
    """The modules an isolated interpreter imports running `script` (-X importtime)."""
    run = subprocess.run(
        [sys.executable, "-IS", "-X", "importtime", str(script)],
        input=stdin,
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        check=True,
    )
    lines = run.stderr.decode().splitlines()[1:]  # below the header
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def test_the_launcher_answers_version_importing_only_os_and_sys(tmp_path):
    """VERSION is asked whenever a runtime loads a network: it must not pay for imports."""
    script, bare = tmp_path / "netc-cni", tmp_path / "bare.py"
    script.write_text(launcher_text(sys.executable, warm_socket=str(tmp_path / "none.sock")))
    bare.write_text("import os\nimport sys\n")
    assert _imported(script, b'{"cniVersion": "0.4.0"}') == _imported(bare, b"")
    answer = subprocess.run(
        [sys.executable, "-IS", str(script)],
        input=b'{"cniVersion": "0.4.0"}',
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        check=True,
    )
    assert json.loads(answer.stdout)["cniVersion"] == "0.4.0"
