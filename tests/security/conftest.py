"""Attack suites: what a tenant, a local user or a ConfigMap editor tries, performed as root.

Each test performs one attack of docs/security.md in namespaces and
directories it creates (the kernel tests' labs, tests/kernel/conftest.py),
never on the machine's own network or CNI directories.  Tests that use a lab
need root; the others run anywhere.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.conftest import bin_dir, lab, warm

__all__ = ["bin_dir", "lab", "warm"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_lab = {"lab", "warm", "bin_dir"} & set(getattr(item, "fixturenames", ()))
        if "tests/security/" in str(item.path) and uses_lab:
            item.add_marker(pytest.mark.root)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory under /tmp that everyone may traverse (0755), as /run and /var/lib are.

    pytest's own temporary directories are root's alone, which would hide what
    another user could do.  Removed after the test.
    """
    path = Path(tempfile.mkdtemp(prefix="netc-security-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)
