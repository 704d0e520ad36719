"""Fixtures of the membership tests: root, netc-cni installed, a real etcd on the underlay.

Every namespace and process is the test's own and removed when it ends,
pass or fail; nothing touches the root network namespace.
"""

from __future__ import annotations

import shutil

import pytest

from tests.cluster.sim import SimCluster
from tests.kernel.conftest import bin_dir
from tests.membership.apiserver import ApiServer
from tests.membership.etcd_cluster import EtcdCluster

__all__ = ["bin_dir"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/membership/" in str(item.path):
            item.add_marker(pytest.mark.root)


@pytest.fixture
def etcd(tmp_path, bin_dir):
    """A 3-member etcd on the underlay of a cluster with no node yet."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (Debian's etcd-server; see .ci/run)")
    with SimCluster(tmp_path, bin_dir, "vxlan", False, ()) as sim:
        yield EtcdCluster(sim)


@pytest.fixture
def api(tmp_path, bin_dir):
    """The tests' Kubernetes API server on the underlay of a cluster with no node yet."""
    with SimCluster(tmp_path, bin_dir, "vxlan", False, ()) as sim:
        server = ApiServer(
            sim.add_host("apiserver", 201), "198.18.10.201", tmp_path / "api", bookmark_every=0.2
        )
        server.sim = sim
        try:
            yield server
        finally:
            server.stop()
