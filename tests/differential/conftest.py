"""Fixtures for the differential tests: the kernel lab's, twice (one lab per target).

Tests here need root and network namespaces, like tests/kernel, and get the
same `root` marker.  Each pair of labs is deleted when its test ends, pass or
fail, so `ip netns list` shows none of them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.differential.twins import TARGETS, TwinLab, run_both
from tests.kernel.conftest import bin_dir

__all__ = ["bin_dir", "twins"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/differential/" in str(item.path):
            item.add_marker(pytest.mark.root)


@pytest.fixture
def twins(tmp_path: Path, bin_dir: Path) -> Iterator[dict[str, TwinLab]]:
    """A reference lab and a netc lab, by target name, removed after the test."""
    labs: dict[str, TwinLab] = {}
    try:
        for lab in run_both(lambda t: TwinLab(t, tmp_path / t, bin_dir), TARGETS):
            labs[lab.target] = lab
        yield labs
    finally:
        for lab in labs.values():
            lab.close()
