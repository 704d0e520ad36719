"""Container images built offline from Debian's busybox-static, for podman and containerd.

The tests must not depend on a registry, so the image is made here: one
layer holding /bin/busybox (statically linked, no libraries to copy), the
applet links the tests use and a page for `busybox httpd` to serve.  It is
written as a docker-archive (manifest.json + config + layer tar, by
runtime/image_archives.py as the agent's image is), which both
`podman load` and `ctr image import` read, so one format serves both
runtimes.  The image CMD serves HTTP on port 80, which lets containerd use the
image as its *sandbox* image: the pod answers on its host port without a
single CreateContainer.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from runtime import image_archives
from runtime.image_archives import add_member, image_config
from runtime.packaging import this_architecture

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "httpd", "cat", "ls", "ip", "sleep")
WWW = "/www"
HTTPD = ["/bin/httpd", "-f", "-p", "80", "-h", WWW]
"""Busybox httpd in the foreground on port 80, serving the page."""


def rootfs_layer(page: str) -> bytes:
    """An uncompressed layer tar: busybox, its applet links, /etc basics and `page` in /www."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("bin", "etc", "dev", "proc", "sys", "tmp", "www"):
            add_member(archive, directory, mode=0o755)
        add_member(archive, "bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)
        for applet in APPLETS:
            add_member(archive, f"bin/{applet}", link="busybox")
        add_member(archive, "etc/passwd", data=b"root:x:0:0:root:/:/bin/sh\n")
        add_member(archive, "etc/group", data=b"root:x:0:\n")
        add_member(archive, "www/index.html", data=page.encode())
    return buffer.getvalue()


def docker_archive(path: Path, reference: str, page: str, command: list[str] | None = None) -> Path:
    """Write a docker-archive of a busybox image named `reference` serving `page`."""
    layer = rootfs_layer(page)
    config = image_config(
        layer,
        command or HTTPD,
        this_architecture().platform,
        path="/bin",
        created_by="tests/runtimes/images.py",
    )
    return image_archives.docker_archive(path, reference, layer, config)
