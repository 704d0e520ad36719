"""Fault suites: the plugin killed, fed hostile input, short of disk -- as root, in labs.

They reuse the kernel tests' labs (tests/kernel/conftest.py) and are lean by
default; `NETC_FAULTS_LONG=1` runs every kill point, moment and payload.
"""

from __future__ import annotations

import pytest

from tests.kernel.conftest import bin_dir, lab, warm

__all__ = ["bin_dir", "lab", "warm"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.root)
