"""Issue 14: the layers hold by construction, checked on the source.

    compiler/   pure: imports neither the runtime nor click (nor does anything it
                imports); no I/O, clock or environment
    runtime/    everything with side effects; the command line lives in runtime/cli
    plugin      netc-cni's import path: standard library only (test_cli_plan.py
                checks what is loaded)
"""

import ast
from pathlib import Path

import pytest

from tests.support import ROOT


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("compiler"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_compiler_never_reaches_up_into_the_runtime(path):
    upward = {m for m in _imports(path) if m.split(".")[0] in ("runtime", "click")}
    assert upward == set()


@pytest.mark.parametrize("path", [p for p in _modules("runtime") if "cli" not in p.parts],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_command_line_knows_click_and_nothing_imports_the_command_line(path):
    assert not {m for m in _imports(path) if m.split(".")[0] == "click"
                or m.startswith("runtime.cli")}


@pytest.mark.parametrize("module", ["time", "datetime", "random", "subprocess", "socket", "os",
                                    "io", "pathlib", "shutil", "tempfile", "fcntl", "ctypes",
                                    "threading", "importlib.metadata"])
def test_compiler_modules_have_no_clock_randomness_processes_or_files(module):
    users = [str(p.relative_to(ROOT)) for p in _modules("compiler") if module in _imports(p)]
    assert users == []
