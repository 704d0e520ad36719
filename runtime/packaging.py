"""What netc ships to nodes: the agent's container image, built offline (`make image`).

No registry is reachable from where netc is built and tested, so the image
is assembled from files: Debian's python3 with the shared libraries it and
its extension modules load, its standard library, and netc's packages and
their dependencies (from the environment netc runs in).  For this machine's
architecture the interpreter, libraries and standard library are the
machine's own; for another (an arm64 image built on amd64) they come from
Debian's packages of that architecture (runtime/debian.py), unpacked into a
scratch directory -- nothing of them is run.  The libraries are found by
reading the ELF files (runtime/elf.py) from the interpreter down, as the
loader would; netc and its dependencies are pure Python, and an extension
module built for another architecture (PyYAML's optional libyaml binding)
is left out: PyYAML then uses its pure-Python emitter.

Every module in the image comes with its byte code, compiled here as
unchecked-hash caches (PEP 552): the image is read-only, so a cache
Python found stale could never be rewritten, and every start would compile
again (a tar's file times are not the files' own).  Byte code is the same on
every architecture, so it is compiled by the Python running this build,
which must be of the image's version.

The image also carries what the agent runs on the node's behalf: iptables
(both backends' multi-call programs under each backend's names, and the
extensions they load at run time), conntrack and kmod's modprobe, with
their libraries -- the agent works in its container, not the host's mount
namespace.  And the plugin's shim (runtime/shim.py), compiled here for the
image's architecture: the agent installs it on the node configured for its
socket.  The Python plugin artifact, its cold fallback, is not in the image:
the agent builds it from these very modules (`runtime.artifact`), so
launcher and server always agree.
"""

from __future__ import annotations

import importlib.util
import io
import marshal
import os
import platform
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runtime import debian, shim
from runtime.elf import read_elf
from runtime.image_archives import Image, Platform, add_member, docker_archive, image_config
from runtime.image_archives import oci_archive as write_oci_archive
from runtime.install import netc_version

PYTHON = Path("/usr/bin/python3")
STDLIB_SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "distutils",
    "pydoc_data",
    "unittest",
    "venv",
    "__phello__",
}
"""Parts of the standard library the agent never imports."""
BUILD_FILES = "config-"
"""config-3.11-<arch>/: the static libpython and makefiles for building extensions (33 MB)."""
PACKAGES = ("compiler", "runtime", "grammar")
DEPENDENCIES = ("click", "yaml", "lark", "prometheus_client")
DLOPENED_BY_LIBC = ("libgcc_s.so.1",)
"""Loaded by glibc with dlopen, so no ELF file names it: pthread_exit unwinds with it.
Python ends daemon threads that way at exit; without it the agent aborted on SIGTERM
("libgcc_s.so.1 must be installed for pthread_exit to work", status 134)."""
NODE_PROGRAMS = {
    "usr/sbin/xtables-nft-multi": "/usr/sbin/xtables-nft-multi",
    "usr/sbin/xtables-legacy-multi": "/usr/sbin/xtables-legacy-multi",
    "usr/sbin/conntrack": "/usr/sbin/conntrack",
    "usr/bin/kmod": "/bin/kmod",
}
"""The image's programs for the node's kernel, and where a root holds them (Debian's paths)."""
NODE_PROGRAM_NAMES = {
    **{
        f"usr/sbin/{tool}-{backend}{role}": f"xtables-{backend}-multi"
        for backend in ("nft", "legacy")
        for tool in ("iptables", "ip6tables")
        for role in ("", "-restore", "-save")
    },
    "usr/sbin/modprobe": "../bin/kmod",
}
"""The names the runtime runs them by (runtime/iptables.py `program`): symbolic links."""
NODE_PACKAGES = ("iptables", "conntrack", "kmod")
"""Debian's packages of those programs, for an image of another architecture."""
SITE = "usr/lib/netc"
LAUNCHER = f"""#!/usr/bin/python3 -IS
import sys
sys.path.append("/{SITE}")
from runtime.cli import main
main()
"""
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "netc/debian"
"""Where Debian's packages for images of other architectures are kept between builds."""


@dataclass(frozen=True)
class Architecture:
    """A processor architecture images are built for, in the names each party uses."""

    name: str
    """Debian's and OCI's name: amd64, arm64."""
    machine: str
    """The kernel's (`uname -m`): x86_64, aarch64."""
    elf_machine: int
    """e_machine of its ELF files."""
    variant: str | None = None
    """The OCI platform variant (arm64 images are `linux/arm64/v8`)."""

    @property
    def triplet(self) -> str:
        """Debian's multiarch directory for its libraries: /lib/<triplet>."""
        return f"{self.machine}-linux-gnu"

    @property
    def platform(self) -> Platform:
        """As an OCI index and the image config name it."""
        return Platform(self.name, self.variant)


ARCHITECTURES = {
    a.name: a
    for a in (Architecture("amd64", "x86_64", 62), Architecture("arm64", "aarch64", 183, "v8"))
}


def this_architecture() -> Architecture:
    """The build machine's own architecture."""
    machine = platform.machine()
    found = [a for a in ARCHITECTURES.values() if a.machine == machine]
    if not found:
        raise ValueError(f"images are built for {', '.join(ARCHITECTURES)}, not {machine}")
    return found[0]


@dataclass(frozen=True)
class Root:
    """A file tree the image's interpreter, libraries and standard library are taken from.

    "/" for this machine's own files, or Debian's packages unpacked.  Names
    are read as the loader inside the image reads them: absolute symbolic
    links point into the tree, never out of it.
    """

    directory: Path
    architecture: Architecture

    def resolve(self, name: str, hops: int = 40) -> Path:
        """The file `name` (absolute in the tree) is, every symbolic link followed inside it."""
        pending = list(PurePosixPath(name).parts[1:])
        done: list[str] = []
        while pending:
            part = pending.pop(0)
            if part == "..":
                done = done[:-1]  # as at "/", ".." of the top is the top
                continue
            candidate = self.directory.joinpath(*done, part)
            if not candidate.is_symlink():
                done.append(part)
                continue
            hops -= 1
            if hops < 0:
                raise OSError(f"{name}: too many levels of symbolic links")
            target = PurePosixPath(os.readlink(candidate))
            pending[:0] = target.parts[1:] if target.is_absolute() else target.parts
            if target.is_absolute():
                done = []
        return self.directory.joinpath(*done)

    def library(self, soname: str) -> str:
        """Where the loader finds `soname`: Debian's multiarch directories, then the defaults."""
        triplet = self.architecture.triplet
        for directory in (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib"):
            if self.resolve(f"{directory}/{soname}").is_file():
                return f"{directory}/{soname}"
        raise FileNotFoundError(
            f"{soname} is in none of the library directories of {self.directory}"
        )


def python_name() -> str:
    """The interpreter's versioned name (python3.11): the one the images hold."""
    return PYTHON.resolve().name


def libraries(root: Root, binaries: Sequence[Path]) -> dict[str, Path]:
    """The loader and shared libraries the binaries need, all the way down: name -> file.

    From their ELF headers (PT_INTERP, DT_NEEDED), looked up in the root as
    its loader would -- a library named as the loader itself is the loader,
    already there --, plus those the C library loads itself
    (`DLOPENED_BY_LIBC`), from the C library's directory.
    """
    pending = [read_elf(binary) for binary in binaries]
    loaders = {elf.interpreter for elf in pending if elf.interpreter is not None}
    found = {name: root.resolve(name) for name in loaders}
    loader_names = {PurePosixPath(name).name for name in loaders}
    while pending:
        for soname in set(pending.pop().needed) - loader_names:
            name = root.library(soname)
            if name not in found:
                found[name] = root.resolve(name)
                pending.append(read_elf(found[name]))
    for libc in [name for name in found if PurePosixPath(name).name == "libc.so.6"]:
        for name in (f"{PurePosixPath(libc).parent}/{n}" for n in DLOPENED_BY_LIBC):
            if root.resolve(name).is_file():
                found[name] = root.resolve(name)
    return found


def byte_code(source: bytes, name: str) -> bytes:
    """An unchecked-hash cache of a module (PEP 552).

    Python loads it without looking at the source's time, which the image does not keep.
    """
    code = compile(source, name, "exec", dont_inherit=True)
    unchecked_hash = (1).to_bytes(4, "little")
    return (
        importlib.util.MAGIC_NUMBER
        + unchecked_hash
        + importlib.util.source_hash(source)
        + marshal.dumps(code)
    )


def _extension_modules(directory: Path, architecture: Architecture) -> list[Path]:
    """The compiled modules below `directory` built for `architecture`."""
    return [
        path
        for path in sorted(directory.rglob("*.so"))
        if read_elf(path).machine == architecture.elf_machine
    ]


def _add_python_tree(
    archive: tarfile.TarFile, directory: Path, prefix: str, architecture: Architecture
) -> None:
    """A tree of Python sources and data at `prefix`, each module with its byte code.

    Caches already there are left out (Python checks them against file
    times), and so are extension modules built for another architecture.
    """
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if (
            relative.parts[0] in STDLIB_SKIP
            or relative.parts[0].startswith(BUILD_FILES)
            or "__pycache__" in relative.parts
            or not path.is_file()
        ):
            continue
        if path.suffix == ".so" and read_elf(path).machine != architecture.elf_machine:
            continue
        name = f"{prefix}/{relative.as_posix()}"
        data = path.read_bytes()
        add_member(archive, name, data=data)
        if path.suffix == ".py":
            cache = (
                f"{PurePosixPath(name).parent}/__pycache__/"
                f"{path.stem}.{sys.implementation.cache_tag}.pyc"
            )
            add_member(archive, cache, data=byte_code(data, f"/{name}"))


def module_dir(name: str) -> Path:
    """Where a package's files are; each of ours has an `__init__.py` (no namespace package)."""
    module = __import__(name)
    if module.__file__ is None:
        raise FileNotFoundError(f"{name} is a namespace package: no one directory to copy")
    return Path(module.__file__).resolve().parent


def xtables_extensions(root: Root) -> list[Path]:
    """The extensions iptables loads at run time (`-m comment`, `-j MASQUERADE`, ...)."""
    directory = root.resolve(f"/usr/lib/{root.architecture.triplet}/xtables")
    return sorted(directory.glob("*.so"))


def image_layer(root: Root, shim_binary: bytes) -> bytes:
    """The image's one layer.

    python3 and its libraries, the stdlib, netc, the node's programs and the plugin's shim.
    """
    python = python_name()
    if python != f"python{sys.version_info.major}.{sys.version_info.minor}":
        raise RuntimeError(
            f"the image's byte code is for {python}: build it with that "
            f"Python, not {platform.python_version()}"
        )
    architecture = root.architecture
    stdlib = root.resolve(f"/usr/lib/{python}")
    interpreter = root.resolve(f"/usr/bin/{python}")
    extensions = [
        *_extension_modules(stdlib / "lib-dynload", architecture),
        *(so for name in DEPENDENCIES for so in _extension_modules(module_dir(name), architecture)),
    ]
    programs = {name: root.resolve(path) for name, path in NODE_PROGRAMS.items()}
    xtables = xtables_extensions(root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in (
            "bin",
            "etc",
            "dev",
            "proc",
            "sys",
            "tmp",
            "run",
            "usr",
            "usr/bin",
            "usr/sbin",
            "usr/lib",
            SITE,
            "var",
            "var/lib",
        ):
            add_member(archive, directory, mode=0o755)
        add_member(archive, "usr/bin/python3", data=interpreter.read_bytes(), mode=0o755)
        needing = [interpreter, *extensions, *programs.values(), *xtables]
        for name, library in sorted(libraries(root, needing).items()):
            add_member(archive, name.lstrip("/"), data=library.read_bytes(), mode=0o755)
        for name, program in programs.items():
            add_member(archive, name, data=program.read_bytes(), mode=0o755)
        for name, target in NODE_PROGRAM_NAMES.items():
            add_member(archive, name, link=target)
        extension_dir = f"usr/lib/{architecture.triplet}/xtables"
        add_member(archive, extension_dir, mode=0o755)
        for extension in xtables:
            add_member(
                archive,
                f"{extension_dir}/{extension.name}",
                data=extension.read_bytes(),
                mode=0o644,
            )
        _add_python_tree(archive, stdlib, f"usr/lib/{python}", architecture)
        for package in (*PACKAGES, *DEPENDENCIES):
            _add_python_tree(archive, module_dir(package), f"{SITE}/{package}", architecture)
        # the distribution's metadata, so `netc_version()` -- and with it the warm
        # server's identity -- is the release's in the image too, not "unreleased"
        version = netc_version()
        add_member(
            archive,
            f"{SITE}/netc-{version}.dist-info/METADATA",
            data=f"Metadata-Version: 2.1\nName: netc\nVersion: {version}\n".encode(),
        )
        add_member(archive, "usr/bin/netc", data=LAUNCHER.encode(), mode=0o755)
        add_member(archive, f"{SITE}/{shim.PREBUILT}", data=shim_binary, mode=0o755)
        add_member(archive, "etc/passwd", data=b"root:x:0:0:root:/:/usr/bin/python3\n")
        add_member(archive, "etc/group", data=b"root:x:0:\n")
    return buffer.getvalue()


def debian_packages(python: str) -> tuple[str, ...]:
    """What an image's root needs from Debian (their dependencies come along).

    The interpreter, its standard library, the library the C library loads
    itself, and the programs the agent runs on the node's behalf.
    """
    return (f"{python}-minimal", f"lib{python}-stdlib", "libgcc-s1", *NODE_PACKAGES)


def image_shim(architecture: Architecture) -> bytes:
    """The plugin's shim compiled for `architecture`, static.

    With this machine's C compiler for its own architecture, with Debian's
    cross compiler (gcc-ARCH-linux-gnu) for another; none fails the build.
    """
    if architecture == this_architecture():
        return shim.compiled()
    cross = f"{architecture.triplet}-gcc"
    if shutil.which(cross) is None:
        raise shim.ShimUnavailable(
            f"no {cross} to build netc-cni's shim for {architecture.name}: install Debian's "
            f"gcc-{architecture.machine.replace('_', '-')}-linux-gnu and "
            f"libc6-dev-{architecture.name}-cross"
        )
    return shim.compiled(cross)


def agent_layer(
    architecture: Architecture, cache: Path = DEFAULT_CACHE, *, refresh: bool = False
) -> bytes:
    """The agent image's layer for `architecture`.

    From this machine's files if it is its own, else from Debian's packages
    of that architecture (fetched once into `cache`).
    """
    binary = image_shim(architecture)
    if architecture == this_architecture():
        return image_layer(Root(Path("/"), architecture), binary)
    debs = debian.fetch(debian_packages(python_name()), architecture.name, cache, refresh=refresh)
    with tempfile.TemporaryDirectory(prefix="netc-root-") as scratch:
        return image_layer(Root(debian.unpack(debs, Path(scratch)), architecture), binary)


def agent_image(
    architecture: Architecture, cache: Path = DEFAULT_CACHE, *, refresh: bool = False
) -> Image:
    """The agent's image: `netc agent ...` is its entry point's default command."""
    layer = agent_layer(architecture, cache, refresh=refresh)
    config = image_config(
        layer, ["agent", "--help"], architecture.platform, entrypoint=["/usr/bin/netc"]
    )
    return Image(architecture.platform, layer, config)


def agent_docker_archive(
    path: Path,
    reference: str,
    architecture: Architecture | None = None,
    cache: Path = DEFAULT_CACHE,
    *,
    refresh: bool = False,
) -> Path:
    """The agent's image for one architecture (this machine's by default), a docker-archive."""
    image = agent_image(architecture or this_architecture(), cache, refresh=refresh)
    return docker_archive(path, reference, image.layer, image.config)


def agent_oci_archive(
    path: Path,
    reference: str,
    architectures: Sequence[Architecture],
    cache: Path = DEFAULT_CACHE,
    *,
    refresh: bool = False,
) -> Path:
    """The agent's images for several architectures, one OCI index named `reference`."""
    images = [agent_image(a, cache, refresh=refresh) for a in architectures]
    return write_oci_archive(path, reference, images)
