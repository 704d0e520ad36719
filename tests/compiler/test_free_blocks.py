"""The lowest free block a hint names: blocks and subnets given outright both take blocks."""

from __future__ import annotations

import ipaddress

from compiler.cluster_checks import lowest_free_block

V4 = ipaddress.ip_network("10.244.0.0/16")
V6 = ipaddress.ip_network("fd00:10:244::/56")


def subnets(*texts: str) -> tuple:
    return tuple(ipaddress.ip_network(t) for t in texts)


def test_the_first_gap_is_free():
    taken = [subnets("10.244.0.0/24"), subnets("10.244.2.0/24")]
    assert lowest_free_block([V4], [24], taken) == 1


def test_a_subnet_larger_than_a_block_takes_every_block_it_covers():
    assert lowest_free_block([V4], [24], [subnets("10.244.0.0/22")]) == 4


def test_a_block_is_free_only_when_free_in_every_family():
    taken = [subnets("10.244.0.0/24", "fd00:10:244::/64"), subnets("fd00:10:244:1::/64")]
    assert lowest_free_block([V4, V6], [24, 64], taken) == 2


def test_subnets_outside_the_pod_cidr_take_nothing():
    assert lowest_free_block([V4], [24], [subnets("10.245.0.0/24", "192.168.0.0/16")]) == 0


def test_when_every_block_is_taken_none_is_free():
    small = ipaddress.ip_network("10.244.0.0/23")
    assert lowest_free_block([small], [24], [subnets("10.244.0.0/24", "10.244.1.0/24")]) is None
