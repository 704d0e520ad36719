"""Reading an OCI archive as the OCI image-layout spec describes it, for the tests.

Written here from the spec, not with netc's writer (runtime/image_archives.py),
so a mistake in the writer is not read back the same way: index.json names
the image index, whose manifests name a config and gzipped layers, every
blob under blobs/sha256/ named by the SHA-256 of its bytes.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path
from typing import Any


class Layout:
    """An OCI archive's files, read whole."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as archive:
            self.files = {
                member.name: file.read()
                for member in archive.getmembers()
                if (file := archive.extractfile(member)) is not None
            }

    def blob(self, descriptor: dict[str, Any]) -> bytes:
        """The bytes a descriptor names."""
        algorithm, _, hexdigest = descriptor["digest"].partition(":")
        return self.files[f"blobs/{algorithm}/{hexdigest}"]

    def document(self, descriptor: dict[str, Any]) -> dict[str, Any]:
        """The JSON a descriptor names."""
        return json.loads(self.blob(descriptor))

    @property
    def index(self) -> dict[str, Any]:
        return json.loads(self.files["index.json"])

    def image_index(self) -> dict[str, Any]:
        """The one image index index.json names."""
        (entry,) = self.index["manifests"]
        return self.document(entry)

    def manifest(self, architecture: str) -> dict[str, Any]:
        """The manifest of `architecture` in the image index."""
        (entry,) = [
            m
            for m in self.image_index()["manifests"]
            if m["platform"]["architecture"] == architecture
        ]
        return self.document(entry)

    def layer(self, architecture: str) -> bytes:
        """The one layer of `architecture`'s image, uncompressed."""
        (layer,) = self.manifest(architecture)["layers"]
        return gzip.decompress(self.blob(layer))
