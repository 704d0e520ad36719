"""Kubernetes quantities read as bits: what they mean and the hints for common mistakes."""

from __future__ import annotations

import pytest

from compiler.quantities import QuantityError, parse_quantity
from compiler.shaping import describe_rate


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("500k", 500_000),
        ("1M", 1_000_000),
        ("10Mi", 10 * 2**20),
        ("1G", 10**9),
        ("1.5M", 1_500_000),
        ("1e6", 1_000_000),
        ("1E3", 1000),
        ("1Ki", 1024),
        (".5k", 500),
        ("1P", 10**15),
        ("42", 42),
    ],
)
def test_quantities(text, bits):
    assert parse_quantity(text) == bits


@pytest.mark.parametrize(("text", "bits"), [("0.5", 1), ("10m", 1), ("1.0001k", 1001)])
def test_fractions_round_up_like_kubernetes(text, bits):
    assert parse_quantity(text) == bits


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("10MB", "bandwidth is in bits per second: 10MB is `80M` (8 bits to the byte)"),
        ("1.5MB", "bandwidth is in bits per second: 1.5MB is `12M` (8 bits to the byte)"),
        ("10KiB", "bandwidth is in bits per second: 10KiB is `80Ki` (8 bits to the byte)"),
        ("10mbit", "write `10M`: quantities carry no unit, they are bits per second"),
        ("100kbps", "write `100k`: quantities carry no unit, they are bits per second"),
        ("fast", "write a number with an optional suffix: 500k, 1M, 10Mi, 1G (bits per second)"),
    ],
)
def test_mistakes_are_refused_with_the_quantity_meant(text, hint):
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert caught.value.message == f"`{text}` is not a Kubernetes quantity"
    assert caught.value.hint == hint


@pytest.mark.parametrize("text", ["", "-1M", "1 M", "1e31", "M", "1MM"])
def test_malformed_quantities_are_refused(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("bits", "text"),
    [
        (8_000_000, "8 Mbit/s"),
        (1500, "1.5 kbit/s"),
        (999, "999 bit/s"),
        (2 * 10**12, "2 Tbit/s"),
    ],
)
def test_describe_rate(bits, text):
    assert describe_rate(bits) == text
