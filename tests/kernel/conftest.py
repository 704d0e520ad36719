"""Fixtures for tests against the real kernel: root, network namespaces, netc-cni installed.

Every test gets its own lab (node, client, pods), deleted when the test ends,
pass or fail.  Nothing here touches the root network namespace.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.install import install
from tests.kernel.lab import Lab
from tests.kernel.warm import WarmServer

NEEDED = ("ip", "iptables-restore", "tc", "conntrack", "ping")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kernel/" in str(item.path):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNI plugin directory holding the netc-cni launcher (as install-plugin writes it)."""
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root (CI runs them as root)")
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (see .ci/run)")
    directory = tmp_path_factory.mktemp("cni-bin")
    install(directory)
    return directory


@pytest.fixture
def lab(tmp_path: Path, bin_dir: Path) -> Iterator[Lab]:
    """A node and a client namespace, removed after the test."""
    with Lab(tmp_path, bin_dir) as environment:
        yield environment


@pytest.fixture
def warm(lab: Lab) -> WarmServer:
    """A running `netc serve-cni` and a warm launcher as the lab's plugin (stopped with the lab)."""
    return WarmServer(lab)
