"""The multi-architecture image: one OCI index of the amd64 and arm64 images.

Checked against the OCI image-layout and image-index specifications
(tests/rollout/oci_layout.py reads it as they describe it), then imported
into a private containerd 1.6 with `ctr images import --all-platforms`, the
way docs/deployment.md says to; without that flag ctr takes the content of
this machine's platform only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
from pathlib import Path

import pytest

from runtime.packaging import ARCHITECTURES
from tests.kernel.lab import Namespaces
from tests.rollout.conftest import INDEX_REFERENCE
from tests.rollout.oci_layout import Layout
from tests.runtimes.conftest import require
from tests.runtimes.containerd import Containerd
from tests.runtimes.host import CgroupTree

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PLATFORMS = [
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux", "variant": "v8"},
]
"""As the OCI image-index specification names them (arm64 as linux/arm64/v8)."""


@pytest.fixture(scope="module")
def layout(image_index: Path) -> Layout:
    return Layout(image_index)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_layout_names_one_image_index_by_the_images_reference(layout):
    assert json.loads(layout.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert layout.index["schemaVersion"] == 2
    (entry,) = layout.index["manifests"]
    assert entry["mediaType"] == INDEX
    assert entry["annotations"] == {
        "io.containerd.image.name": INDEX_REFERENCE,
        "org.opencontainers.image.ref.name": "test",
    }


def test_the_index_holds_one_manifest_per_architecture_with_its_platform(layout):
    image_index = layout.image_index()
    assert (image_index["schemaVersion"], image_index["mediaType"]) == (2, INDEX)
    entries = image_index["manifests"]
    assert [e["platform"] for e in entries] == PLATFORMS
    assert {e["mediaType"] for e in entries} == {MANIFEST}
    for platform in PLATFORMS:
        config = layout.document(layout.manifest(platform["architecture"])["config"])
        assert {key: config[key] for key in platform} == platform
    assert sorted(p["architecture"] for p in PLATFORMS) == sorted(ARCHITECTURES)


def test_every_blob_is_named_by_its_digest_and_every_descriptor_says_its_size(layout):
    """And no blob is left over that no descriptor names."""
    named = []

    def check(descriptor: dict) -> bytes:
        data = layout.blob(descriptor)
        assert (_digest(data), len(data)) == (descriptor["digest"], descriptor["size"])
        named.append(descriptor["digest"])
        return data

    (entry,) = layout.index["manifests"]
    for manifest_entry in json.loads(check(entry))["manifests"]:
        manifest = json.loads(check(manifest_entry))
        check(manifest["config"])
        for layer in manifest["layers"]:
            check(layer)
    blobs = [name for name in layout.files if name.startswith("blobs/")]
    assert sorted(blobs) == sorted(f"blobs/sha256/{d.removeprefix('sha256:')}" for d in named)


def test_each_layers_uncompressed_digest_is_its_configs_diff_id(layout):
    for architecture in ARCHITECTURES:
        manifest = layout.manifest(architecture)
        (layer,) = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        config = layout.document(manifest["config"])
        assert config["rootfs"] == {
            "type": "layers",
            "diff_ids": [_digest(gzip.decompress(layout.blob(layer)))],
        }


@pytest.mark.root
@pytest.mark.runtimes
def test_containerd_imports_the_index_with_both_platforms(image_index, layout, tmp_path):
    require("containerd")
    tag = secrets.token_hex(3)
    with Namespaces(tmp_path) as lab:
        engine = Containerd(
            lab.netns("ctrd"), tmp_path, tmp_path, "localhost/unused:1", CgroupTree(f"index-{tag}")
        )
        try:
            engine.start(network_ready=False)
            engine.ctr("images", "import", "--all-platforms", str(image_index))
            listed = engine.ctr("images", "ls").splitlines()
            content = engine.ctr("content", "ls", "--quiet").split()
        finally:
            engine.close()
    (line,) = [line for line in listed if line.startswith(INDEX_REFERENCE + " ")]
    assert INDEX in line.split()
    assert "linux/amd64,linux/arm64/v8" in line.split()
    blobs = {
        f"sha256:{name.removeprefix('blobs/sha256/')}"
        for name in layout.files
        if name.startswith("blobs/sha256/")
    }
    assert set(content) == blobs
