"""What netc ships to nodes: the agent's container image, built offline (`make image`).

No registry is reachable from where netc is built and tested, so the image
is assembled from this machine's own files: Debian's python3 with the
shared libraries it and its extension modules load, its standard library,
and netc's packages and their dependencies (from the environment netc runs
in).  The plugin artifact the agent installs on nodes is not in the image:
the agent builds it from these very modules (`runtime.artifact`), for the
warm socket it serves, so launcher and server always agree.
It is written as a docker-archive -- manifest.json, the image config and one
layer -- which `ctr images import` and `podman load` both read.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from runtime.install import netc_version

PYTHON = Path("/usr/bin/python3")
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
               "distutils", "pydoc_data", "unittest", "venv", "__phello__"}
"""Parts of the standard library the agent never imports."""
BUILD_FILES = "config-"
"""config-3.11-<arch>/: the static libpython and makefiles for building extensions (33 MB)."""
PACKAGES = ("compiler", "runtime", "grammar")
DEPENDENCIES = ("click", "yaml", "lark")
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}
DLOPENED_BY_LIBC = ("libgcc_s.so.1",)
"""Loaded by glibc with dlopen, so ldd never lists it: pthread_exit unwinds with it.
Python ends daemon threads that way at exit; without it the agent aborted on SIGTERM
("libgcc_s.so.1 must be installed for pthread_exit to work", status 134)."""
SITE = "usr/lib/netc"
LAUNCHER = f"""#!/usr/bin/python3 -IS
import sys
sys.path.append("/{SITE}")
from runtime.cli import main
main()
"""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_member(archive: tarfile.TarFile, name: str, *, data: bytes | None = None,
               mode: int = 0o644, link: str | None = None) -> None:
    """A file (`data`), a symbolic link (`link`) or else a directory, owned by root."""
    info = tarfile.TarInfo(name)
    info.mode = mode
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode | 0o111
    else:
        info.size = len(data)
    archive.addfile(info, io.BytesIO(data) if data is not None else None)


def _libraries(binaries: Sequence[Path]) -> set[Path]:
    """The shared libraries (and the loader) the binaries need.

    From ldd, and those the C library loads itself (`DLOPENED_BY_LIBC`), from
    the C library's directory.
    """
    found: set[Path] = set()
    for binary in binaries:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True,
                                 check=False).stdout
        for line in listing.splitlines():
            parts = line.split()
            path = next((p for p in parts if p.startswith("/")), None)
            if path:
                found.add(Path(path))
    for libc in [library for library in found if library.name == "libc.so.6"]:
        found |= {libc.parent / name for name in DLOPENED_BY_LIBC
                  if (libc.parent / name).exists()}
    return found


def _python_files(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """(name in the image, file) for a tree of Python sources, caches and data."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        top = relative.parts[0] if relative.parts else ""
        if top in STDLIB_SKIP or top.startswith(BUILD_FILES):
            continue
        if path.is_file() and ".opt-" not in path.name:  # -O caches: never used
            yield f"{prefix}/{relative.as_posix()}", path


def _module_dir(name: str) -> Path:
    """Where a package's files are; each of ours has an `__init__.py` (no namespace package)."""
    module = __import__(name)
    if module.__file__ is None:
        raise FileNotFoundError(f"{name} is a namespace package: no one directory to copy")
    return Path(module.__file__).resolve().parent


def image_layer() -> bytes:
    """The image's one layer: python3 and its libraries, the stdlib, netc."""
    stdlib = Path("/usr/lib") / PYTHON.resolve().name  # Debian's python3.11: /usr/lib/python3.11
    dynload = stdlib / "lib-dynload"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("bin", "etc", "dev", "proc", "sys", "tmp", "run", "usr", "usr/bin",
                          "usr/lib", SITE, "var", "var/lib"):
            add_member(archive, directory, mode=0o755)
        add_member(archive, "usr/bin/python3", data=PYTHON.resolve().read_bytes(), mode=0o755)
        extensions = [*dynload.glob("*.so"),
                      *(so for name in DEPENDENCIES for so in _module_dir(name).rglob("*.so"))]
        for library in sorted(_libraries([PYTHON.resolve(), *extensions])):
            add_member(archive, library.as_posix().lstrip("/"), data=library.read_bytes(),
                 mode=0o755)
        for name, path in _python_files(stdlib, stdlib.as_posix().lstrip("/")):
            add_member(archive, name, data=path.read_bytes())
        for package in (*PACKAGES, *DEPENDENCIES):
            for name, path in _python_files(_module_dir(package), f"{SITE}/{package}"):
                add_member(archive, name, data=path.read_bytes())
        # the distribution's metadata, so `netc_version()` -- and with it the warm
        # server's identity -- is the release's in the image too, not "unreleased"
        version = netc_version()
        add_member(archive, f"{SITE}/netc-{version}.dist-info/METADATA",
             data=f"Metadata-Version: 2.1\nName: netc\nVersion: {version}\n".encode())
        add_member(archive, "usr/bin/netc", data=LAUNCHER.encode(), mode=0o755)
        add_member(archive, "etc/passwd", data=b"root:x:0:0:root:/:/usr/bin/python3\n")
        add_member(archive, "etc/group", data=b"root:x:0:\n")
    return buffer.getvalue()


def image_config(layer: bytes, command: list[str], *, entrypoint: list[str] | None = None,
                 path: str = "/usr/bin:/bin", created_by: str = "netc runtime/packaging.py"
                 ) -> bytes:
    """The image configuration: this machine's platform, one layer, what it runs."""
    run: dict[str, object] = {"Cmd": command, "WorkingDir": "/", "Env": [f"PATH={path}"]}
    if entrypoint is not None:
        run["Entrypoint"] = entrypoint
    config = {
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer)]},
        "history": [{"created_by": created_by}],
    }
    return json.dumps(config, sort_keys=True).encode()


def docker_archive(path: Path, reference: str, layer: bytes, config: bytes) -> Path:
    """A docker-archive of one layer named `reference`."""
    config_name = _sha256(config).removeprefix("sha256:") + ".json"
    manifest = [{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]
    with tarfile.open(path, mode="w") as archive:
        add_member(archive, "layer.tar", data=layer)
        add_member(archive, config_name, data=config)
        add_member(archive, "manifest.json", data=json.dumps(manifest).encode())
    return path


def agent_image(path: Path, reference: str) -> Path:
    """The agent's image: `netc agent ...` is its entry point's default command."""
    layer = image_layer()
    config = image_config(layer, ["agent", "--help"], entrypoint=["/usr/bin/netc"])
    return docker_archive(path, reference, layer, config)
