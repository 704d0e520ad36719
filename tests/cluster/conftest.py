"""Fixtures of the cluster tests: root, and netc-cni installed (as for the kernel tests).

Every cluster is made of namespaces the test creates and removes, pass or
fail; nothing here touches the root network namespace.
"""

from __future__ import annotations

import pytest

from tests.kernel.conftest import bin_dir

__all__ = ["bin_dir"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.path):
            item.add_marker(pytest.mark.root)
