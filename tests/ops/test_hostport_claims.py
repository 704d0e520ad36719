"""Host-port claims on disk: which held claims a new one conflicts with (no kernel needed).

A claim looks only at the files of its own protocol's port, so these files
stand next to ones that share a prefix of its text and must not count.
"""

from __future__ import annotations

import pytest

from compiler.planner.params import HostportClaim
from runtime.ops.hostports import _conflict, claims_in

HELD = {
    "tcp:8080@198.18.0.1": "netc pods a eth0",
    "tcp:80800": "netc pods b eth0",
    "tcp:808": "netc pods c eth0",
    "udp:8080": "netc pods d eth0",
    "lock": "",
}


@pytest.fixture
def claims(tmp_path):
    for name, holder in HELD.items():
        (tmp_path / name).write_text(holder)
    return tmp_path


@pytest.mark.parametrize(
    ("claim", "holder"),
    [
        ("tcp:8080", "netc pods a eth0"),  # all addresses against one of them
        ("tcp:8080@198.18.0.1", "netc pods a eth0"),
        ("tcp:8080@198.18.0.2", None),  # another address of the same port
        ("udp:8080", "netc pods d eth0"),
        ("tcp:8081", None),
        ("tcp:80", None),  # a prefix of held ports' texts, not a port held
    ],
)
def test_a_claim_conflicts_only_with_claims_of_its_own_port(claims, claim, holder):
    parsed = HostportClaim.parse(claim)
    assert parsed is not None
    assert _conflict(str(claims), parsed, "netc pods new eth0") == holder


def test_its_own_claim_is_no_conflict(claims):
    claim = HostportClaim.parse("tcp:8080@198.18.0.1")
    assert claim is not None
    assert _conflict(str(claims), claim, "netc pods a eth0") is None


def test_the_listing_of_one_port_leaves_the_others_out(claims):
    assert [str(c) for c in claims_in(str(claims), "tcp:8080")] == ["tcp:8080@198.18.0.1"]
    assert len(claims_in(str(claims))) == 4
