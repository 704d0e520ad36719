"""Container images built offline from Debian's busybox-static, for podman and containerd.

The tests must not depend on a registry, so the image is made here: one
layer holding /bin/busybox (statically linked, no libraries to copy), the
applet links the tests use and a page for `busybox httpd` to serve.  It is
written as a docker-archive (manifest.json + config + layer tar), which both
`podman load` and `ctr image import` read, so one format serves both
runtimes.  The image CMD serves HTTP on port 80, which lets containerd use the
image as its *sandbox* image: the pod answers on its host port without a
single CreateContainer.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "httpd", "cat", "ls", "ip", "sleep")
WWW = "/www"
HTTPD = ["/bin/httpd", "-f", "-p", "80", "-h", WWW]
"""Busybox httpd in the foreground on port 80, serving the page."""

ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def _add(archive: tarfile.TarFile, name: str, *, data: bytes | None = None,
         mode: int = 0o644, link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode | 0o111
    else:
        info.size = len(data)
    archive.addfile(info, io.BytesIO(data) if data is not None else None)


def rootfs_layer(page: str) -> bytes:
    """An uncompressed layer tar: busybox, its applet links, /etc basics and `page` in /www."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("bin", "etc", "dev", "proc", "sys", "tmp", "www"):
            _add(archive, directory, mode=0o755)
        _add(archive, "bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)
        for applet in APPLETS:
            _add(archive, f"bin/{applet}", link="busybox")
        _add(archive, "etc/passwd", data=b"root:x:0:0:root:/:/bin/sh\n")
        _add(archive, "etc/group", data=b"root:x:0:\n")
        _add(archive, "www/index.html", data=page.encode())
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(layer: bytes, command: list[str]) -> bytes:
    """The image configuration: this machine's platform, `command` as CMD, one layer."""
    architecture = ARCHITECTURES.get(platform.machine(), platform.machine())
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": command, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer)]},
        "history": [{"created_by": "tests/runtimes/images.py"}],
    }
    return json.dumps(config, sort_keys=True).encode()


def docker_archive(path: Path, reference: str, page: str,
                   command: list[str] | None = None) -> Path:
    """Write a docker-archive of a busybox image named `reference` serving `page`."""
    layer = rootfs_layer(page)
    config = image_config(layer, command or HTTPD)
    config_name = _sha256(config).removeprefix("sha256:") + ".json"
    manifest = [{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]
    with tarfile.open(path, mode="w") as archive:
        _add(archive, "layer.tar", data=layer)
        _add(archive, config_name, data=config)
        _add(archive, "manifest.json", data=json.dumps(manifest).encode())
    return path
