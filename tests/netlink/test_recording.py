"""The recorder still works, and today's kernel answers as the stored recordings say (root).

Records every scene afresh into a temporary directory (namespaces of its
own, removed afterwards) and checks that netc reads the fresh replies as it
reads the stored ones: a recorder gone stale, a kernel that answers
differently, or a stored file edited by hand shows up here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.netlink.channel import NetlinkError
from tests.netlink.conversation import REPLIES
from tests.netlink.record import record_all
from tests.netlink.scenes import SCENES, replayed

pytestmark = pytest.mark.root


def read(name: str, directory: Path = REPLIES) -> object:
    """What netc makes of a recording: its result, or (errno, detail) of its refusal."""
    try:
        return replayed(name, directory)
    except NetlinkError as error:
        return error.errno, error.detail


def test_a_fresh_recording_reads_as_the_stored_one(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    record_all(tmp_path)
    assert sorted(p.stem for p in tmp_path.glob("*.txt")) == sorted(SCENES)
    for name in SCENES:
        assert read(name, tmp_path) == read(name), name
