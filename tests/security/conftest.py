"""Attack suites: what a tenant, a local user or a ConfigMap editor tries, performed as root.

Each test performs one attack of docs/security.md in namespaces and
directories it creates (the kernel tests' labs, tests/kernel/conftest.py),
never on the machine's own network or CNI directories.  Tests that use a lab
need root; the others run anywhere.
"""

from __future__ import annotations

import pytest

from tests.kernel.conftest import bin_dir, lab, warm

__all__ = ["bin_dir", "lab", "warm"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_lab = {"lab", "warm", "bin_dir"} & set(getattr(item, "fixturenames", ()))
        if "tests/security/" in str(item.path) and uses_lab:
            item.add_marker(pytest.mark.root)
