"""The agent's images on their own: each root file system of the index, run with chroot.

The amd64 and the arm64 image of `netc image --format oci` (tests/rollout/
conftest.py) are unpacked and run as root with chroot, no runtime.  The
image of another architecture than this machine's runs under QEMU's user
mode emulator, called directly (`qemu-aarch64-static PROGRAM`): nothing is
registered with binfmt_misc.  The emulator is copied into the root and run
inside the chroot, so the image's interpreter finds only the image's files;
QEMU's own `-L ROOT` would fall back to the machine's files for a path
missing from the root, and could hide a library the image lacks on a
machine that has arm64 libraries installed.

What test_on_nodes.py can only see now and then -- an agent that aborts on
SIGTERM because a library the C library loads at run time is missing --
is made certain here: a daemon thread woken while the interpreter finalizes
is ended with pthread_exit, which needs libgcc_s.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.install import netc_version
from runtime.packaging import ARCHITECTURES, SITE, Architecture, this_architecture
from runtime.shim import PREBUILT
from tests.rollout.oci_layout import Layout

pytestmark = pytest.mark.root

ELF_MACHINE = {"amd64": 62, "arm64": 183}
"""e_machine of each architecture's ELF files (the ELF specification's EM_X86_64, EM_AARCH64)."""
PREBUILT_SHIM = f"{SITE}/{PREBUILT}"
"""The plugin's shim, compiled for the image's architecture."""
EMULATOR = "/.qemu-user"
"""Where the emulator is put in an unpacked root of another architecture."""

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
EXTENSION_MODULES = """
import importlib, pathlib, sys
dynload = pathlib.Path(sys.prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                       "lib-dynload")
names = sorted(so.name.split(".")[0] for so in dynload.glob("*.so"))
for name in names:
    importlib.import_module(name)
print(len(names))
"""
AGENT_IMPORTS = """
import sys
sys.path.append("/usr/lib/netc")
import runtime.agent, runtime.cni.plugin, runtime.etcd
"""


@dataclass
class Unpacked:
    """One image's layer, unpacked, and how to run its programs."""

    architecture: Architecture
    root: Path
    layer: bytes

    @property
    def emulated(self) -> bool:
        return self.architecture != this_architecture()

    def run(self, *command: str) -> subprocess.CompletedProcess:
        """`command` in the root, under the emulator for another architecture.

        The emulator runs ELF programs only: a script is run as the kernel
        runs one, its #! line's interpreter with the script's path.
        """
        if self.emulated:
            script = (self.root / command[0].lstrip("/")).read_bytes()
            if script.startswith(b"#!"):
                command = (*script[2:].split(b"\n")[0].decode().split(), *command)
            command = (EMULATOR, *command)
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        return subprocess.run(
            [chroot, str(self.root), *command],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def image(
    request: pytest.FixtureRequest, image_index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Unpacked:
    """The index's image of one architecture, unpacked (with the emulator if needed)."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root (CI runs the root tests as root)")
    architecture = ARCHITECTURES[request.param]
    layer = Layout(image_index).layer(architecture.name)
    root = tmp_path_factory.mktemp(f"rootfs-{architecture.name}")
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        files.extractall(root, filter="tar")
    unpacked = Unpacked(architecture, root, layer)
    if unpacked.emulated:
        emulator = shutil.which(f"qemu-{architecture.machine}-static")
        if emulator is None:
            pytest.fail(
                f"qemu-{architecture.machine}-static is missing "
                "(package qemu-user-static, see .ci/run)"
            )
        shutil.copy(emulator, root / EMULATOR.lstrip("/"))
    return unpacked


def test_the_entry_point_is_netc_of_this_release(image):
    done = image.run("/usr/bin/netc", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"netc, version {netc_version()}"), (
        done.stderr
    )


def test_the_interpreter_and_every_library_are_built_for_the_images_machine(image):
    """No ELF file of another machine slips in (PyYAML's x86-64 binding into arm64)."""
    machines = {}
    with tarfile.open(fileobj=io.BytesIO(image.layer)) as files:
        for member in files.getmembers():
            data = files.extractfile(member).read(20) if member.isfile() else b""
            if data.startswith(b"\x7fELF"):
                machines[member.name] = int.from_bytes(data[18:20], "little")
    assert machines["usr/bin/python3"] == ELF_MACHINE[image.architecture.name]
    assert set(machines.values()) == {ELF_MACHINE[image.architecture.name]}
    assert len(machines) > 40  # the interpreter, its libraries, the extension modules


def test_every_extension_module_of_the_standard_library_loads(image):
    """Each one's libraries are in the image, found by its loader."""
    done = image.run("/usr/bin/python3", "-IS", "-c", EXTENSION_MODULES)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 40


def test_the_agents_modules_load_from_the_images_byte_code(image):
    """No module is compiled at start: the image is read-only, a stale cache stays stale."""
    done = image.run("/usr/bin/python3", "-v", "-IS", "-c", AGENT_IMPORTS)
    assert done.returncode == 0, done.stderr
    loaded = [line for line in done.stderr.splitlines() if line.startswith("# code object from")]
    compiled = [line for line in loaded if not line.endswith(".pyc'")]
    assert len(loaded) > 100
    assert compiled == []


def test_python_in_the_image_ends_daemon_threads_without_aborting(image):
    (image.root / "late.py").write_text(LATE_THREAD)
    done = image.run("/usr/bin/python3", "-IS", "/late.py")
    assert done.returncode == 0, done.stderr


NAT_RULES = """*nat
:NETC-TEST-PO - [0:0]
:NETC-TEST-HP - [0:0]
-A NETC-TEST-PO -d 10.244.0.0/16 -m comment --comment "netc test" -j RETURN
-A NETC-TEST-PO -s 10.244.1.0/24 -j MASQUERADE
-A NETC-TEST-HP -p tcp -m multiport --dports 80,443 -j DNAT --to-destination 10.244.1.2:8080
-A POSTROUTING -j NETC-TEST-PO
-A PREROUTING -m addrtype --dst-type LOCAL -j NETC-TEST-HP
COMMIT
"""
EXTENSIONS = {
    "-m comment": "comment match options",
    "-m multiport": "multiport match options",
    "-m addrtype": "Address type match options",
    "-j MASQUERADE": "MASQUERADE target options",
    "-j DNAT": "DNAT target options",
}


def _in_own_network(image: Unpacked, *command: str) -> subprocess.CompletedProcess:
    """`command` in the image, in a network namespace made for it: nothing of the machine's."""
    emulator = f" {EMULATOR}" if image.emulated else ""
    return subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            f'exec chroot "$0"{emulator} "$@"',
            str(image.root),
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


@pytest.mark.parametrize(
    "tool", ["iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"]
)
def test_both_iptables_backends_load_their_extensions(image, tool):
    """The programs the agent runs by name, each loading the extensions netc's rules use.

    Under QEMU's user mode, iptables-nft cannot start (no NETLINK_NETFILTER
    socket: its loader is asked to resolve its libraries instead) and
    ip6tables asks the kernel in vain which revisions of addrtype and DNAT it
    has: those run on arm64 nodes only.
    """
    if image.emulated and "nft" in tool:
        # -E: the emulator's way to set a variable for the guest alone
        done = _in_own_network(image, "-E", "LD_TRACE_LOADED_OBJECTS=1", f"/usr/sbin/{tool}")
        assert done.returncode == 0 and "libnftnl.so.11" in done.stdout, done.stderr
        assert "not found" not in done.stdout, done.stdout
        return
    for option, says in EXTENSIONS.items():
        if tool.startswith("ip6") and (
            option == "-j MASQUERADE" or (image.emulated and option in ("-m addrtype", "-j DNAT"))
        ):
            continue
        done = _in_own_network(image, f"/usr/sbin/{tool}", *option.split(), "-h")
        assert done.returncode == 0 and says in done.stdout, (option, done.stderr)


def test_iptables_restore_and_save_of_both_backends_run_in_the_image(image):
    """On this machine's architecture the image's iptables writes and reads a network
    namespace's tables, both backends (QEMU's user mode has no netfilter netlink)."""
    if image.emulated:
        pytest.skip("qemu-user refuses NETLINK_NETFILTER sockets: the extensions' help only")
    (image.root / "rules").write_text(NAT_RULES)
    for backend in ("nft", "legacy"):
        script = (
            f'chroot "$0" /usr/sbin/iptables-{backend}-restore --noflush < "$0/rules" && '
            f'chroot "$0" /usr/sbin/iptables-{backend}-save -t nat'
        )
        done = subprocess.run(
            ["unshare", "--net", "sh", "-c", script, str(image.root)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        assert done.returncode == 0, done.stderr
        assert '--comment "netc test"' in done.stdout, done.stdout
        assert "--to-destination 10.244.1.2:8080" in done.stdout, done.stdout


def test_conntrack_modprobe_and_the_shim_run(image):
    versions = {
        tool: _in_own_network(image, f"/usr/sbin/{tool}", "--version")
        for tool in ("conntrack", "modprobe")
    }
    assert "conntrack" in versions["conntrack"].stdout + versions["conntrack"].stderr
    assert "kmod version" in versions["modprobe"].stdout, versions["modprobe"].stderr
    shim = image.root / PREBUILT_SHIM
    assert shim.stat().st_mode & 0o111
    done = subprocess.run(
        [
            shutil.which("chroot") or "/usr/sbin/chroot",
            str(image.root),
            *([EMULATOR] if image.emulated else []),
            f"/{PREBUILT_SHIM}",
        ],
        input='{"cniVersion": "0.4.0"}',
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cniVersion"] == "0.4.0"
