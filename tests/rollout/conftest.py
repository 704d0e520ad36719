"""Fixtures of the roll-out tests: the agent's image, built once per session.

The image is what `netc image` writes (runtime/packaging.py), from this
checkout; the root tests import it into each node's containerd.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.packaging import agent_image
from tests.rollout.nodes import AGENT_IMAGE


@pytest.fixture(scope="session")
def agent_image_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's image as a docker-archive (`netc image --out`)."""
    return agent_image(tmp_path_factory.mktemp("image") / "netc.tar", AGENT_IMAGE)
