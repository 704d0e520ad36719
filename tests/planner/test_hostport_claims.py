"""A host-port claim: one way to spell it (its file's name, its JSON), one way to read it back."""

import pytest

from compiler.planner.context import mapping_from_option
from compiler.planner.params import HostportClaim


@pytest.mark.parametrize(
    ("option", "text"),
    [
        ("8080:80", "tcp:8080"),
        ("53:53/udp@198.18.0.1", "udp:53@198.18.0.1"),
        ("8443:443/sctp@fd00::1", "sctp:8443@fd00::1"),
        ("9000:90@0.0.0.0", "tcp:9000"),  # every address: unspecified
    ],
)
def test_a_mappings_claim_is_spelt_and_read_back_the_same(option, text):
    claim = HostportClaim.of(mapping_from_option(option))
    assert str(claim) == claim.to_json() == text
    assert HostportClaim.parse(text) == claim


@pytest.mark.parametrize(
    "name", ["lock", ".tcp:8080.1f2e", "tcp:", "tcp:80@", "tcp:http", ":80", "8080"]
)
def test_other_files_of_the_directory_are_no_claims(name):
    assert HostportClaim.parse(name) is None


def test_a_claim_on_every_address_conflicts_with_one_on_any_address_of_its_port():
    every, one, other = (
        HostportClaim("tcp", 8080),
        HostportClaim("tcp", 8080, "198.18.0.1"),
        HostportClaim("tcp", 8080, "198.18.0.2"),
    )
    assert every.conflicts(one) and one.conflicts(every) and every.conflicts(every)
    assert not one.conflicts(other)
    assert not every.conflicts(HostportClaim("udp", 8080))
    assert not every.conflicts(HostportClaim("tcp", 8081))


def test_a_message_says_the_port_its_protocol_and_its_address():
    assert HostportClaim("udp", 53, "fd00::1").describe() == "53/udp on fd00::1"
    assert HostportClaim("tcp", 8080).describe() == "8080/tcp"
