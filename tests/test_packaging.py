"""The installed wheel carries everything netc needs at run time, the grammar included."""

import ast
import re
import subprocess
import sys
import tomllib
import zipfile

from tests.support import ROOT


def test_the_wheel_carries_the_grammar_and_both_console_scripts(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("netc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "grammar/netdsl.lark" in names
    assert {"compiler/ir.py", "runtime/cni/plugin.py", "runtime/netlink/tc.py"} <= set(names)
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert "netc = runtime.cli:main" in entry_points
    assert "netc-cni = runtime.cni.plugin:entry" in entry_points


DISTRIBUTION_MODULES = {
    "lark": "lark",
    "click": "click",
    "pyyaml": "yaml",
    "prometheus_client": "prometheus_client",
}
"""The import name of each run-time dependency pyproject.toml declares."""
EXTRA_MODULES = {"container-runtime-interface-api": ("grpc", "cri_api")}
"""The import names of the optional extras other than `test` (`netc[cri]` for `netc gc`)."""


def _imported_modules(path):
    """What a module imports when it runs (not what only type checkers import)."""
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_installed_code_needs_only_the_declared_dependencies():
    """`pip install .` without the test extras gives a working netc and netc-cni.

    Every module of the installed packages imports the standard library, its
    own packages, or a dependency pyproject.toml declares -- never a test tool
    such as pytest, hypothesis or pyroute2.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ ]", d)[0].lower() for d in project["dependencies"]}
    assert declared == set(DISTRIBUTION_MODULES)
    extras = {
        re.split(r"[<>=!~ ]", d)[0].lower()
        for name, deps in project["optional-dependencies"].items()
        if name != "test"
        for d in deps
    }
    assert extras == set(EXTRA_MODULES)
    allowed = (
        set(sys.stdlib_module_names)
        | set(DISTRIBUTION_MODULES.values())
        | {"compiler", "runtime", "grammar"}
        | {m for ms in EXTRA_MODULES.values() for m in ms}
    )
    found = {
        (str(path.relative_to(ROOT)), module)
        for package in ("compiler", "runtime", "grammar")
        for path in (ROOT / package).rglob("*.py")
        for module in _imported_modules(path)
        if module not in allowed
    }
    assert found == set()
