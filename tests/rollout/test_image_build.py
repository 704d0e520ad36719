"""How `netc image` assembles an image: ELF headers, a foreign root, Debian's cache, its options.

The libraries of an image are found from ELF headers inside the root, as
its loader would find them; for this machine's python3 that must be what
`ldd` says.  A root unpacked from packages is read as from inside: a
symbolic link never leads to the build machine's files.  Debian's packages
are fetched once: a build from the cache needs no network, a cache whose
files were changed is not used, and without network or cache the build
fails saying so.  Network-less builds run in a network namespace of their
own (`unshare -n`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from runtime.cli import main
from runtime.elf import ElfError, read_elf
from runtime.packaging import ARCHITECTURES, PYTHON, Root, libraries, this_architecture
from tests.rollout.conftest import DEBIAN_CACHE, netc_image
from tests.support import ROOT

DYNLOAD = Path("/usr/lib") / PYTHON.resolve().name / "lib-dynload"


def _ldd(binary: Path) -> set[str]:
    listing = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    return {word for line in listing.splitlines() for word in line.split() if word.startswith("/")}


def test_the_libraries_from_elf_headers_are_those_ldd_finds_for_this_machines_python():
    binaries = [PYTHON.resolve(), *sorted(DYNLOAD.glob("*.so"))]
    expected = set().union(*(_ldd(binary) for binary in binaries))
    found = libraries(Root(Path("/"), this_architecture()), binaries)
    assert set(found) == expected | {f"/lib/{this_architecture().triplet}/libgcc_s.so.1"}
    assert read_elf(PYTHON.resolve()).machine == this_architecture().elf_machine


def test_a_file_that_is_not_a_64_bit_little_endian_elf_is_refused_by_name(tmp_path):
    script, old = tmp_path / "script", tmp_path / "elf32"
    script.write_text("#!/bin/sh\n")
    old.write_bytes(b"\x7fELF" + bytes([1, 1, 1]) + bytes(57))  # ELFCLASS32
    with pytest.raises(ElfError, match=f"{script}: not an ELF file"):
        read_elf(script)
    with pytest.raises(ElfError, match=f"{old}: not a 64-bit little-endian ELF file"):
        read_elf(old)


def test_a_symbolic_link_in_a_root_never_leads_out_of_it(tmp_path):
    """A package's absolute link is read in its root: the image never takes the machine's file."""
    root = Root(tmp_path, ARCHITECTURES["arm64"])
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("the root's own\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "absolute").symlink_to("/etc/passwd")
    (tmp_path / "lib" / "upwards").symlink_to("../../../../../etc/passwd")
    (tmp_path / "lib" / "loop").symlink_to("/lib/loop")
    assert root.resolve("/lib/absolute") == tmp_path / "etc" / "passwd"
    assert root.resolve("/lib/upwards") == tmp_path / "etc" / "passwd"
    with pytest.raises(OSError, match="too many levels of symbolic links"):
        root.resolve("/lib/loop")


def test_a_library_missing_from_the_root_is_named(tmp_path):
    binary = tmp_path / "usr" / "bin" / "program"
    binary.parent.mkdir(parents=True)
    shutil.copy(PYTHON.resolve(), binary)
    missing = rf"^lib\S+\.so\.\d+ is in none of the library directories of {tmp_path}$"
    with pytest.raises(FileNotFoundError, match=missing):
        libraries(Root(tmp_path, this_architecture()), [binary])


def _offline(*arguments: str) -> subprocess.CompletedProcess:
    """`netc image` in a network namespace of its own: no network at all."""
    if os.geteuid() != 0:
        pytest.skip("unshare -n needs root (CI runs the root tests as root)")
    return netc_image(*arguments, offline=True)


@pytest.fixture
def cache_copy(image_index: Path, tmp_path: Path) -> Path:
    """A copy of the tests' Debian cache, filled by the index's build."""
    copy = tmp_path / "debian"
    shutil.copytree(DEBIAN_CACHE, copy, ignore=shutil.ignore_patterns("lock"))
    return copy


@pytest.mark.root
def test_a_build_from_the_cache_needs_no_network(cache_copy, tmp_path):
    done = _offline(
        "--arch", "arm64", "--debian-cache", str(cache_copy), "--out", str(tmp_path / "arm64.tar")
    )
    assert done.returncode == 0, done.stderr
    assert "linux/arm64/v8" in done.stderr


@pytest.mark.root
def test_a_cached_package_that_was_changed_is_not_used(cache_copy, tmp_path):
    """The build goes back to Debian's archive -- unreachable here, so it fails."""
    (deb,) = (cache_copy / "arm64" / "debs").glob("libc6_*.deb")
    data = bytearray(deb.read_bytes())
    data[-1] ^= 0xFF
    deb.write_bytes(bytes(data))
    done = _offline(
        "--arch", "arm64", "--debian-cache", str(cache_copy), "--out", str(tmp_path / "arm64.tar")
    )
    assert done.returncode == 3
    assert "apt-get update failed (is Debian's archive reachable?)" in done.stderr
    assert not (tmp_path / "arm64.tar").exists()


@pytest.mark.root
def test_without_network_or_cache_the_build_fails_saying_so(tmp_path):
    done = _offline(
        "--arch",
        "arm64",
        "--debian-cache",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "arm64.tar"),
    )
    assert done.returncode == 3
    assert "apt-get update failed (is Debian's archive reachable?)" in done.stderr
    assert re.search(r"^E: Failed to fetch http", done.stderr, re.M), done.stderr


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            ["--arch", "amd64", "--arch", "arm64"],
            "a docker-archive holds one architecture: use --format oci",
        ),
        (
            ["--format", "oci", "--arch", "arm64", "--arch", "arm64"],
            "an architecture is given twice",
        ),
        (["--arch", "riscv64"], "'riscv64' is not one of 'amd64', 'arm64'"),
    ],
)
def test_image_options_that_cannot_be_built_are_usage_errors(arguments, error, tmp_path):
    done = netc_image(*arguments, "--out", str(tmp_path / "image.tar"))
    assert done.returncode == 2
    assert error in done.stderr
    assert not (tmp_path / "image.tar").exists()


@pytest.mark.parametrize("target", ["image", "image ARCH=arm64", "image-index"])
def test_the_makefiles_image_targets_are_netc_image_commands_it_accepts(target):
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *target.split()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    words = done.stdout.replace("\\\n", " ").split()
    assert words[:2] == [".venv/bin/netc", "image"], done.stdout
    parent = click.Context(main, info_name="netc")
    command = main.get_command(parent, "image")
    assert command is not None
    context = command.make_context("image", words[2:], parent=parent)
    assert context.params["debian_cache"] == Path("build/debian")


def test_without_a_cross_compiler_the_build_fails_saying_what_to_install(tmp_path):
    """The image carries the plugin's shim compiled for its architecture: no compiler, no
    image (never one whose nodes would get no plugin)."""
    other = next(a for a in ARCHITECTURES.values() if a != this_architecture())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "image",
            "--arch",
            other.name,
            "--debian-cache",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "image.tar"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(tmp_path / "no-tools")},
    )
    assert done.returncode == 3
    assert (
        f"no {other.triplet}-gcc to build netc-cni's shim for {other.name}: install "
        f"Debian's gcc-{other.machine.replace('_', '-')}-linux-gnu"
    ) in done.stderr
    assert not (tmp_path / "image.tar").exists()
