"""Fixtures for tests that drive real container runtimes against netc's plugin.

The runtimes are not mocked and not written here: podman and containerd,
as Debian packages them, run netc-cni as they would on a node.  Everything
happens in the kernel lab's namespaces (tests/kernel/lab.py): the runtime and
its pods in "node", the HTTP client in "client".  The network is compiled by
the `netc build --target netc` command and the plugin installed by
`netc install-plugin`, the way an admin would do it.

The tests skip when podman or containerd is not installed; any other missing
piece (root, busybox-static, runc, the reference plugins) is a failure that
names what to install, since CI (.ci/run) installs all of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.lab import Lab
from tests.runtimes import network
from tests.runtimes.containerd import Containerd
from tests.runtimes.host import CgroupTree
from tests.runtimes.images import BUSYBOX, docker_archive

REFERENCE_PLUGINS = Path("/usr/lib/cni")
NETC = Path(sys.executable).parent / "netc"
"""The netc command of the interpreter running the tests (a venv's, or pyenv's)."""

NEEDED = {
    "nsenter": "util-linux",
    "runc": "runc",
    "curl": "curl",
    "tc": "iproute2",
    "iptables-save": "iptables",
}
NEEDED_BY = {"podman": {"conmon": "conmon"}, "containerd": {"ctr": "containerd"}}


def require(runtime: str) -> None:
    """Skip without `runtime`; fail, naming the package, when anything else is missing."""
    if os.geteuid() != 0:
        pytest.skip("runtime tests need root (CI runs them as root)")
    if shutil.which(runtime) is None:
        pytest.skip(f"{runtime} is not installed (apt-get install {runtime})")
    needed = {**NEEDED, **NEEDED_BY[runtime]}
    missing = [f"{c} (package {p})" for c, p in needed.items() if shutil.which(c) is None]
    if not BUSYBOX.exists():
        missing.append(f"{BUSYBOX} (package busybox-static)")
    if not (REFERENCE_PLUGINS / "loopback").exists():
        missing.append(f"{REFERENCE_PLUGINS}/loopback (package containernetworking-plugins)")
    if missing:
        pytest.fail(f"missing: {', '.join(missing)} (see .ci/run)")


def netc(*args: str) -> str:
    """Run the netc command line; its output."""
    done = subprocess.run([str(NETC), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"netc {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def build(source: str, directory: Path) -> Path:
    """Compile `.netdsl` text with `netc build --target netc`; the conflist written."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory.parent / "network.netdsl").write_text(source)
    netc(
        "build",
        "--target",
        "netc",
        "--out",
        str(directory),
        str(directory.parent / "network.netdsl"),
    )
    (conflist,) = directory.glob("*.conflist")
    return conflist


def one_bin_dir(directory: Path) -> Path:
    """netc-cni installed into `directory`, with every reference plugin linked beside it."""
    netc("install-plugin", "--bin-dir", str(directory))
    for plugin in REFERENCE_PLUGINS.iterdir():
        (directory / plugin.name).symlink_to(plugin)
    return directory


@contextlib.contextmanager
def containerd_on(lab: Lab, source: str, sandbox_image: str) -> Iterator[Containerd]:
    """A running containerd in the node: the network of `source` (built with `netc build
    --target netc`) in its conf_dir, the sandbox image serving the lab's page in k8s.io,
    /var/lib its own (libcni's cache is the test's, not the host's)."""
    conflist = build(source, lab.tmp / "net.d")
    engine = Containerd(
        lab.node,
        conflist.parent,
        one_bin_dir(lab.tmp / "cni-bin"),
        sandbox_image,
        CgroupTree(lab.tag),
        own_var_lib=True,
    )
    try:
        engine.start()
        image = docker_archive(lab.tmp / "pause.tar", sandbox_image, network.page(lab))
        engine.ctr("images", "import", str(image))
        yield engine
    finally:
        engine.close()


@pytest.fixture
def containerd_installed() -> None:
    """`require("containerd")`, for `pytest.mark.usefixtures`: before the lab is made."""
    require("containerd")


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNI plugin directory holding only the launcher `netc install-plugin` writes."""
    directory = tmp_path_factory.mktemp("netc-plugin")
    netc("install-plugin", "--bin-dir", str(directory))
    return directory


@pytest.fixture
def lab(tmp_path: Path, plugin_dir: Path) -> Iterator[Lab]:
    """The kernel lab's node and client namespaces, deleted after the test."""
    with Lab(tmp_path, plugin_dir) as environment:
        yield environment
