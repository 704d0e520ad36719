"""Shared test helpers: golden files and the `--update-golden` option.

A golden test compares text the code produces with a file under tests/.  When
they differ the test fails with a unified diff; `pytest --update-golden`
rewrites the files instead, to be reviewed with `git diff` before committing.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite golden and snapshot files instead of comparing with them",
    )


class Golden:
    """Compares text with files below tests/ (or rewrites them with --update-golden)."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, relative: str, actual: str) -> None:
        path = TESTS / relative
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != actual:
                path.write_text(actual)
            return
        if not path.exists():
            pytest.fail(
                f"golden file tests/{relative} is missing; run pytest --update-golden",
                pytrace=False,
            )
        expected = path.read_text()
        if actual != expected:
            diff = difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"tests/{relative}",
                tofile="actual",
            )
            pytest.fail(
                "output differs from its golden file (pytest --update-golden "
                "accepts it):\n" + "".join(diff),
                pytrace=False,
            )

    def check_tree(self, relative: str, files: dict[str, str]) -> None:
        """A directory of golden files: exactly these file names, each with this text."""
        directory = TESTS / relative
        if self.update and directory.is_dir():
            for stale in directory.rglob("*"):
                if stale.is_file() and str(stale.relative_to(directory)) not in files:
                    stale.unlink()
        for name, text in files.items():
            self.check(f"{relative}/{name}", text)
        present = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
        assert present == sorted(files), f"tests/{relative} holds other files than produced"


@pytest.fixture(autouse=True)
def _iptables_backend_restored() -> Iterator[None]:
    """An agent run in-process chooses its iptables backend for the whole process.

    `runtime.agent.choose_iptables` sets it in `runtime.iptables` and in
    NETC_IPTABLES, for the warm server it starts; the tests after it in the
    same worker must find the node's default again.
    """
    from runtime import iptables

    before = (os.environ.get(iptables.BACKEND_VARIABLE), iptables.chosen_backend())
    yield
    variable, backend = before
    if variable is None:
        os.environ.pop(iptables.BACKEND_VARIABLE, None)
    else:
        os.environ[iptables.BACKEND_VARIABLE] = variable
    iptables.use_backend(backend)


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(request.config.getoption("--update-golden"))
