"""Container images written as files: one image as a docker-archive, several as an OCI index.

A docker-archive (manifest.json, the image config, one layer tar) holds one
image of one architecture; `ctr images import` and `podman load` read it.
An OCI archive is the OCI image layout (oci-layout, index.json, blobs/) in a
tar: its index.json names one image index whose manifests are the same
image for several platforms, each with its config and its gzipped layer.
`ctr images import --all-platforms`, `podman load`, `skopeo copy oci-archive:`
read it; a registry receives it whole (`skopeo copy --all`), and every node
pulls the manifest of its own architecture.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IMAGE_NAME = "io.containerd.image.name"
"""The full reference containerd gives an image it imports from an index.json."""
REF_NAME = "org.opencontainers.image.ref.name"
"""The OCI layout's name of an image: its tag (`oci-archive:FILE:TAG` for podman, skopeo)."""


@dataclass(frozen=True)
class Platform:
    """What a manifest runs on, as the OCI index and the image config say it."""

    architecture: str
    variant: str | None = None

    @property
    def name(self) -> str:
        """As `ctr` and podman write it: linux/arm64/v8."""
        return "/".join(["linux", self.architecture, *filter(None, [self.variant])])

    def fields(self) -> dict[str, str]:
        """The `platform` of an index entry, also the config's own fields."""
        found = {"architecture": self.architecture, "os": "linux"}
        if self.variant is not None:
            found["variant"] = self.variant
        return found


@dataclass(frozen=True)
class Image:
    """One image of one platform: its single uncompressed layer and its config."""

    platform: Platform
    layer: bytes
    config: bytes


def sha256(data: bytes) -> str:
    """A content digest as OCI writes them."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_member(
    archive: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    mode: int = 0o644,
    link: str | None = None,
) -> None:
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


def image_config(
    layer: bytes,
    command: list[str],
    platform: Platform,
    *,
    entrypoint: list[str] | None = None,
    path: str = "/usr/bin:/bin",
    created_by: str = "netc runtime/packaging.py",
) -> bytes:
    """The image configuration: its platform, one layer, what it runs."""
    run: dict[str, object] = {"Cmd": command, "WorkingDir": "/", "Env": [f"PATH={path}"]}
    if entrypoint is not None:
        run["Entrypoint"] = entrypoint
    config = {
        **platform.fields(),
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        "history": [{"created_by": created_by}],
    }
    return json.dumps(config, sort_keys=True).encode()


def docker_archive(path: Path, reference: str, layer: bytes, config: bytes) -> Path:
    """A docker-archive of one layer named `reference`."""
    config_name = sha256(config).removeprefix("sha256:") + ".json"
    manifest = [{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]
    with tarfile.open(path, mode="w") as archive:
        add_member(archive, "layer.tar", data=layer)
        add_member(archive, config_name, data=config)
        add_member(archive, "manifest.json", data=json.dumps(manifest).encode())
    return path


def oci_archive(path: Path, reference: str, images: Sequence[Image]) -> Path:
    """An OCI image layout in a tar: an index named `reference` of one manifest per image."""
    blobs: dict[str, bytes] = {}

    def blob(media_type: str, data: bytes) -> dict[str, object]:
        digest = sha256(data)
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    manifests = []
    for image in images:
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": blob(CONFIG, image.config),
            "layers": [blob(LAYER, gzip.compress(image.layer, compresslevel=6, mtime=0))],
        }
        manifests.append({**blob(MANIFEST, _json(manifest)), "platform": image.platform.fields()})
    index = blob(INDEX, _json({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}))
    tag = reference.rpartition(":")[2] if ":" in reference.rpartition("/")[2] else "latest"
    top = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{**index, "annotations": {IMAGE_NAME: reference, REF_NAME: tag}}],
    }
    with tarfile.open(path, mode="w") as archive:
        add_member(archive, "oci-layout", data=_json({"imageLayoutVersion": "1.0.0"}))
        add_member(archive, "index.json", data=_json(top))
        for directory in ("blobs", "blobs/sha256"):
            add_member(archive, directory, mode=0o755)
        for digest, data in blobs.items():
            add_member(archive, f"blobs/sha256/{digest.removeprefix('sha256:')}", data=data)
    return path


def _json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True).encode()
