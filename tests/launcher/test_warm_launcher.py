"""The warm launcher is plain, old Python: 3.9's grammar, the standard library only.

A later release ships it to hosts on its own, where the interpreter may be
older than the one netc needs; the warm path must run there (the cold one
imports netc itself).  Running it under a real 3.9 is a root test in
tests/faults/test_warm_server.py.
"""

import ast
import sys

from runtime.install import launcher_text

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
    cold = next(node for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == "cold")
    warm = [node for node in tree.body if node is not cold]
    assert _imports(ast.Module(body=warm, type_ignores=[])) <= sys.stdlib_module_names
    assert _imports(cold) == {"runtime"}


def test_the_launcher_says_which_interpreter_runs_it_and_isolates_it():
    assert LAUNCHER.startswith("#!/usr/bin/python3 -IS\n")
