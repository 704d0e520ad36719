"""Fixtures of the roll-out tests: the agent's images, built once per session.

The images are what `netc image` writes (runtime/packaging.py), from this
checkout: this machine's as a docker-archive, which the root tests import
into each node's containerd, and the OCI index of the amd64 and arm64
images.  The arm64 one is assembled from Debian's arm64 packages, kept in
build/debian of the checkout (as `make image ARCH=arm64` keeps them): the
first run downloads them (about 25 MB with apt's index), later runs build
offline.  Without network and without that cache the fixture fails, saying
apt could not reach Debian's archive: it never skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.files import locked
from runtime.packaging import agent_docker_archive
from tests.rollout.nodes import AGENT_IMAGE
from tests.support import ROOT

DEBIAN_CACHE = ROOT / "build" / "debian"
INDEX_REFERENCE = "localhost/netc-index:test"


def netc_image(*arguments: str, offline: bool = False) -> subprocess.CompletedProcess:
    """`netc image ...` as a user runs it (`offline`: in a network namespace of its own)."""
    return subprocess.run(
        [
            *(["unshare", "-n"] if offline else []),
            sys.executable,
            "-m",
            "runtime.cli",
            "image",
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@pytest.fixture(scope="session")
def agent_image_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's image as a docker-archive (`netc image --out`)."""
    return agent_docker_archive(tmp_path_factory.mktemp("image") / "netc.tar", AGENT_IMAGE)


@pytest.fixture(scope="session")
def image_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OCI archive of `make image-index`: one index of the amd64 and arm64 images.

    Built once per test run, however many xdist workers need it (the first
    builds it, the others wait for it): a build costs some 15 s of a core.
    """
    run = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run = run.parent  # the workers' directories share their run's
    out = run / "netc-index.tar"
    with locked(str(run / "netc-index.lock"), wait=900):
        if not out.exists():
            done = netc_image(
                "--format",
                "oci",
                "--arch",
                "amd64",
                "--arch",
                "arm64",
                "--debian-cache",
                str(DEBIAN_CACHE),
                "--tag",
                INDEX_REFERENCE,
                "--out",
                f"{out}.part",
            )
            assert done.returncode == 0, f"netc image failed:\n{done.stderr}"
            os.rename(f"{out}.part", out)
    return out
