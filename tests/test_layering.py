"""The layers hold by construction, checked on the source.

compiler/   pure: imports neither the runtime nor click (nor does anything it
            imports); no I/O, clock or environment
runtime/    everything with side effects; the command line lives in runtime/cli
plugin      netc-cni's import path, lazy imports included: standard library
            only, none of what its start-up tricks replace, and read by mypy
            as Python 3.10 (make lint); test_cli_plan.py checks what is loaded
"""

import ast
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


def _imports(path: Path) -> set[str]:
    return {
        imported
        for node in ast.walk(ast.parse(path.read_text()))
        for imported in _imported_by(node)
    }


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("compiler"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_compiler_never_reaches_up_into_the_runtime(path):
    upward = {m for m in _imports(path) if m.split(".")[0] in ("runtime", "click")}
    assert upward == set()


@pytest.mark.parametrize(
    "path",
    [p for p in _modules("runtime") if "cli" not in p.parts],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_command_line_knows_click_and_nothing_imports_the_command_line(path):
    assert not {
        m for m in _imports(path) if m.split(".")[0] == "click" or m.startswith("runtime.cli")
    }


@pytest.mark.parametrize(
    "module",
    [
        "time",
        "datetime",
        "random",
        "subprocess",
        "socket",
        "os",
        "io",
        "pathlib",
        "shutil",
        "tempfile",
        "fcntl",
        "ctypes",
        "threading",
        "importlib.metadata",
    ],
)
def test_compiler_modules_have_no_clock_randomness_processes_or_files(module):
    users = [str(p.relative_to(ROOT)) for p in _modules("compiler") if module in _imports(p)]
    assert users == []


AVOIDED_ON_THE_PLUGIN_PATH = {
    "hashlib",
    "socket",
    "subprocess",
    "dataclasses",
    "inspect",
    "selectors",
    "typing_extensions",
}
"""What the plugin's start-up tricks replace (docs/benchmarks.md, the start-up tricks)."""


def _run_time_imports(path: Path) -> set[str]:
    """The modules a file imports when it runs: those under `if TYPE_CHECKING:` left out."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            node.body = []
    return {imported for node in ast.walk(tree) for imported in _imported_by(node)}


def _imported_by(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def test_the_plugin_path_imports_the_standard_library_only_and_none_of_what_tricks_replace():
    """Every module a plugin call may import, lazy imports included: a new import of
    `subprocess` or of a third-party package there is a cost every pod pays."""
    from bench.startup import module_file, plugin_modules

    outside = {}
    for name in plugin_modules():
        path = module_file(name)
        for imported in _run_time_imports(path) if path else ():
            top = imported.split(".")[0]
            own = top in ("compiler", "runtime")
            if not own and (
                top not in sys.stdlib_module_names or top in AVOIDED_ON_THE_PLUGIN_PATH
            ):
                outside[name] = imported
    assert outside == {}
