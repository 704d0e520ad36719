"""One link's addresses are listed by the kernel for that link alone (runtime/netlink/rtnl.py).

A node's bridge is looked at on every pod's ADD; with hundreds of pod links
beside it, a dump of the whole namespace's addresses walks them all.
"""

from __future__ import annotations

import pytest

from runtime.netlink.rtnl import Rtnl
from runtime.netns import node_namespace
from tests.kernel.lab import Namespaces


@pytest.fixture
def node(tmp_path):
    with Namespaces(tmp_path) as namespaces:
        yield namespaces.netns("node")


def test_one_link_s_addresses_come_from_the_kernel_for_that_link_alone(node):
    with node_namespace(node):
        rtnl = Rtnl()
    try:
        links = []
        for n in range(3):
            rtnl.create(f"ad{n}", "ifb")
            links.append(rtnl.link(f"ad{n}"))
            rtnl.add_address(links[-1], f"10.9.{n}.1/24")
            rtnl.add_address(links[-1], f"fd09:{n}::1/64")
        replies: list[int] = []
        dump = rtnl.nl.dump

        def counted(kind, body, what):
            found = dump(kind, body, what)
            replies.append(len(found))
            return found

        rtnl.nl.dump = counted  # type: ignore[method-assign]
        only = rtnl.addresses(4, links[1])
        assert [(a.index, a.cidr) for a in only] == [(links[1].index, "10.9.1.1/24")]
        assert replies == [1], "the kernel sent other links' addresses too"
        assert [a.cidr for a in rtnl.addresses(6, links[2])] == ["fd09:2::1/64"]
        every = {a.cidr for a in rtnl.addresses(4)}
        assert {"10.9.0.1/24", "10.9.1.1/24", "10.9.2.1/24"} <= every
    finally:
        rtnl.close()
