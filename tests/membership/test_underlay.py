"""A node's underlay addresses: given by the admin, else those of its default route's link."""

from __future__ import annotations

import ipaddress

import pytest

from runtime.underlay import NoAddress, given, of_default_route
from tests.cluster.sim import NODE_A, NODE_D, SimCluster, sh


def test_the_default_routes_interface_gives_one_address_per_family(tmp_path, bin_dir):
    with SimCluster(tmp_path, bin_dir, "vxlan", True, (NODE_A, NODE_D)) as sim:
        sh("ip", "-n", sim.ns(NODE_D), "addr", "add", "203.0.113.9/32", "dev", "lo")
        assert of_default_route(sim.ns(NODE_A)) == (
            ipaddress.ip_interface(f"{NODE_A.address}/24"),
            ipaddress.ip_interface(f"{NODE_A.address6}/64"),
        )
        assert of_default_route(sim.ns(NODE_D))[0] == ipaddress.ip_interface(f"{NODE_D.address}/24")
        sh("ip", "-n", sim.ns(NODE_A), "route", "del", "default")
        sh("ip", "-n", sim.ns(NODE_A), "-6", "route", "del", "default")
        with pytest.raises(NoAddress, match="no default route"):
            of_default_route(sim.ns(NODE_A))


@pytest.mark.parametrize(
    ("texts", "why"),
    [
        (["192.168.10.11"], "not an address with its prefix"),
        (["fe80::1%eth0/64"], "not an address peers can route to"),
        (["127.0.0.1/8"], "not an address peers can route to"),
        (["192.168.10.11/24", "192.168.10.12/24"], "two addresses of one family"),
    ],
)
def test_given_addresses_are_checked(texts, why):
    with pytest.raises(NoAddress, match=why):
        given(texts)
    assert given(["fd00::1/64", "10.0.0.1/8"]) == (
        ipaddress.ip_interface("10.0.0.1/8"),
        ipaddress.ip_interface("fd00::1/64"),
    )
