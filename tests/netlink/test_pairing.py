"""Veth pairing against the real kernel, where an interface index alone misleads (root).

Every namespace numbers its interfaces itself, so the host end's peer index
can equal the index of an unrelated interface in the pod.  Here both
coincidences are arranged on purpose (`ip link add ... index N`): only the
namespace id (IFLA_LINK_NETNSID) tells the true pair from the impostor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runtime.netlink.rtnl import Rtnl
from runtime.netns import Netns
from tests.netlink.record import namespaces, sh

pytestmark = pytest.mark.root


@pytest.fixture
def lab() -> Iterator[dict[str, Netns]]:
    """node, pod, other, lone: h0 in node paired with eth0 in pod; h1 and eth1 impostors.

    h1 (node, index 6) is paired with z (other, index 8); eth1 (pod, index 8)
    with w (other, index 6): h1's peer index is eth1's index and the other
    way round, but they are no pair.  Nothing links to lone.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    with namespaces("node", "pod", "other", "lone") as names:
        node, pod, other = names["node"], names["pod"], names["other"]
        for command in (
            f"ip -n {node} link add h0 index 5 type veth peer name eth0 index 7 netns {pod}",
            f"ip -n {node} link add h1 index 6 type veth peer name z index 8 netns {other}",
            f"ip -n {pod} link add eth1 index 8 type veth peer name w index 6 netns {other}",
        ):
            sh(command.split())
        handles = {role: Netns(f"/run/netns/{name}") for role, name in names.items()}
        try:
            yield handles
        finally:
            for handle in handles.values():
                handle.close()


def rtnl_in(netns: Netns) -> Rtnl:
    with netns.entered():
        return Rtnl()


def test_only_the_true_pair_is_paired_though_the_impostors_indexes_match(lab):
    node, pod = rtnl_in(lab["node"]), rtnl_in(lab["pod"])
    try:
        h0, eth0 = node.link("h0"), pod.link("eth0")
        h1, eth1 = node.link("h1"), pod.link("eth1")
        assert (h1.peer, eth1.peer) == (eth1.index, h1.index), "the trap is not set"
        assert node.paired(h0, eth0, lab["pod"].fd)
        assert pod.paired(eth0, h0, lab["node"].fd)
        assert not node.paired(h1, eth1, lab["pod"].fd)
        assert not pod.paired(eth1, h1, lab["node"].fd)
    finally:
        node.close()
        pod.close()


def test_a_namespace_the_node_has_no_link_into_has_no_id_there(lab):
    node = rtnl_in(lab["node"])
    try:
        assert node.nsid(lab["lone"].fd) is None
        h0 = node.link("h0")
        assert h0.netnsid is not None
        assert node.nsid(lab["pod"].fd) == h0.netnsid
    finally:
        node.close()
