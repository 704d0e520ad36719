"""`netc install-plugin`: the compiled shim as netc-cni, the Python launcher as its cold path.

On a node by hand the shim hands calls to `netc serve-cni` when one runs and
otherwise runs `.netc-cni-cold`, the launcher, with the interpreter it names.
A machine without a C compiler gets the Python launcher alone, as before,
and is told so.
"""

from __future__ import annotations

import os
import subprocess
import sys

from runtime.shim import COLD
from tests.kernel import networks
from tests.support import ROOT


def _install_plugin(bin_dir, *options: str, path: str | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "install-plugin",
            "--bin-dir",
            str(bin_dir),
            *options,
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_shim_hands_calls_to_the_server_and_runs_the_launcher_without_one(lab, warm):
    bin_dir = lab.tmp / "installed"
    done = _install_plugin(bin_dir, "--warm-socket", str(warm.socket))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"installed {bin_dir / COLD} (the cold path: {sys.executable})",
        f"installed {bin_dir / 'netc-cni'} (compiled; warm server: {warm.socket})",
    ]
    assert (bin_dir / "netc-cni").read_bytes().startswith(b"\x7fELF")
    assert (bin_dir / COLD).read_text().startswith(f"#!{sys.executable} -IS\n")
    assert "SOCKET = None" in (bin_dir / COLD).read_text(), "the cold file serves no socket"
    lab.bin_dir = bin_dir
    conflist = lab.network(networks.BRIDGE)
    warm_pod, cold_pod = lab.pod("w"), lab.pod("c")
    assert lab.add(conflist, warm_pod)["ips"]
    assert warm.calls_served() == 1
    warm.stop()
    assert lab.add(conflist, cold_pod)["ips"]
    for pod in (warm_pod, cold_pod):
        lab.delete(conflist, pod)
    assert "veth" not in lab.run(lab.node, "ip", "-o", "link").stdout


def test_without_a_c_compiler_the_python_launcher_is_installed_and_said(tmp_path):
    done = _install_plugin(
        tmp_path, "--warm-socket", "/run/netc/cni.sock", path=str(tmp_path / "no-compiler")
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        "no C compiler to build netc-cni's shim; installed the "
        f"Python launcher {tmp_path / 'netc-cni'} instead"
    )
    assert (tmp_path / "netc-cni").read_text().startswith(f"#!{sys.executable} -IS\n")
    assert not (tmp_path / COLD).exists()
