"""The agent's image on its own: its root file system, run with chroot (root, no runtime).

What test_on_nodes.py can only see now and then -- an agent that aborts on
SIGTERM because a library the C library loads at run time is missing --
is made certain here: a daemon thread woken while the interpreter finalizes
is ended with pthread_exit, which needs libgcc_s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from runtime.install import netc_version

pytestmark = pytest.mark.root

LATE_THREAD = """
import _thread, threading, time
gate = _thread.allocate_lock()
gate.acquire()
threading.Thread(target=gate.acquire, daemon=True).start()
class Late:
    def __del__(self):
        gate.release()  # the daemon thread wakes while the interpreter finalizes
        time.sleep(0.2)
late = Late()
"""


@pytest.fixture(scope="module")
def rootfs(agent_image_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's one layer, unpacked."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root (CI runs the root tests as root)")
    root = tmp_path_factory.mktemp("rootfs")
    with tarfile.open(agent_image_archive) as archive:
        (manifest,) = json.load(archive.extractfile("manifest.json"))
        (layer,) = manifest["Layers"]
        with tarfile.open(fileobj=archive.extractfile(layer)) as files:
            files.extractall(root, filter="tar")
    return root


def _run(rootfs: Path, *command: str) -> subprocess.CompletedProcess:
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([chroot, str(rootfs), *command], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=60, check=False)


def test_the_entry_point_is_netc_of_this_release(rootfs):
    done = _run(rootfs, "/usr/bin/netc", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"netc, version {netc_version()}")


def test_python_in_the_image_ends_daemon_threads_without_aborting(rootfs):
    (rootfs / "late.py").write_text(LATE_THREAD)
    done = _run(rootfs, "/usr/bin/python3", "-IS", "/late.py")
    assert done.returncode == 0, done.stderr
