"""A call looks a link up once until a link changes (runtime/netlink/rtnl.py, `Rtnl.link`).

What it remembers must be what the kernel has: after the call's own change
to a link, after a creation or deletion, and in the pod's namespace after a
veth's creation from the node's.  A creation changes no link there was, so
it makes only the lookups that found nothing stale; a change to one link
leaves its index known (`Rtnl.identified`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from runtime.netlink.rtnl import LinkChanges, Rtnl
from runtime.netns import node_namespace
from tests.kernel.lab import Namespaces


@pytest.fixture
def spaces(tmp_path):
    with Namespaces(tmp_path) as namespaces:
        yield namespaces, namespaces.netns("node"), namespaces.netns("pod")


def _counted(rtnl: Rtnl) -> list[str]:
    """The lookups `rtnl` sends to the kernel from now on."""
    sent: list[str] = []
    get = rtnl.nl.get

    def counting(kind, body, what):
        sent.append(what)
        return get(kind, body, what)

    rtnl.nl.get = counting  # type: ignore[method-assign]
    return sent


@contextlib.contextmanager
def _rtnl_in(namespace: str, changes: LinkChanges | None = None) -> Iterator[Rtnl]:
    """An rtnetlink handle opened in `namespace`, closed after."""
    with node_namespace(namespace):
        rtnl = Rtnl(changes=changes)
    try:
        yield rtnl
    finally:
        rtnl.close()


def _fresh(namespace: str, name: str):
    """The link as a handle that remembers nothing reads it."""
    with _rtnl_in(namespace) as rtnl:
        return rtnl.link(name)


def test_a_link_is_asked_for_once_until_it_changes_and_then_read_as_the_kernel_has_it(spaces):
    _, node, _ = spaces
    with _rtnl_in(node) as rtnl:
        rtnl.create("lk0", "ifb")
        rtnl.create("lkbr0", "bridge")
        sent = _counted(rtnl)
        link = rtnl.link("lk0")
        assert rtnl.link("lk0") == link and len(sent) == 1, "asked once"
        changes = [
            lambda: rtnl.set_group(rtnl.link("lk0"), 4242),
            lambda: rtnl.set_mtu(rtnl.link("lk0"), 1400),
            lambda: rtnl.set_flags(rtnl.link("lk0"), up=True),
            lambda: rtnl.set_master(rtnl.link("lk0"), rtnl.link("lkbr0")),
            lambda: rtnl.set_hairpin(rtnl.link("lk0"), True),
        ]
        for change in changes:
            change()
            assert rtnl.link("lk0") == _fresh(node, "lk0")
        now = rtnl.link("lk0")
        assert (now.group, now.mtu, now.up, now.hairpin) == (4242, 1400, True, True)
        rtnl.delete("lk0")
        assert rtnl.link("lk0") is None


def test_a_veth_made_from_the_node_is_seen_by_the_pods_handle(spaces):
    _, node, pod = spaces
    pod_fd = os.open(f"/run/netns/{pod}", os.O_RDONLY)
    try:
        with _rtnl_in(node) as node_rtnl, _rtnl_in(pod, node_rtnl.changes) as pod_rtnl:
            assert pod_rtnl.link("eth9") is None
            node_rtnl.create_veth("lkveth0", "eth9", pod_fd, 1500)
            inside = pod_rtnl.link("eth9")
            assert inside is not None and inside == _fresh(pod, "eth9")
            node_rtnl.delete("lkveth0")
            assert pod_rtnl.link("eth9") is None, "its peer went with it"
    finally:
        os.close(pod_fd)


def test_a_creation_asks_again_only_for_the_links_found_missing(spaces):
    """Creating a link changes no link there was: the links found are not asked for again,
    those found missing are -- in the pod's handle too, where a veth's peer appears."""
    _, node, pod = spaces
    pod_fd = os.open(f"/run/netns/{pod}", os.O_RDONLY)
    try:
        with _rtnl_in(node) as node_rtnl, _rtnl_in(pod, node_rtnl.changes) as pod_rtnl:
            node_rtnl.create("lkbr1", "bridge")
            found = (node_rtnl.link("lkbr1"), pod_rtnl.link("lo"))
            assert node_rtnl.link("lkveth1") is None and pod_rtnl.link("eth8") is None
            node_sent, pod_sent = _counted(node_rtnl), _counted(pod_rtnl)
            node_rtnl.create_veth("lkveth1", "eth8", pod_fd, 1500)
            assert (node_rtnl.link("lkbr1"), pod_rtnl.link("lo")) == found
            assert node_sent == [] and pod_sent == [], "the links found were not asked for"
            assert node_rtnl.link("lkveth1") == _fresh(node, "lkveth1") is not None
            assert pod_rtnl.link("eth8") == _fresh(pod, "eth8") is not None
            assert len(node_sent) == 1 and len(pod_sent) == 1
    finally:
        os.close(pod_fd)


def test_a_changed_link_is_still_identified_without_asking_until_a_deletion(spaces):
    """A change to a link leaves its index as it was: `identified` answers from the lookup
    made before it, `link` asks again; a new MAC, a port given to a bridge (whose MAC may
    follow) and a deletion send both back, and a name found missing is asked for again
    once a link was created."""
    _, node, _ = spaces
    with _rtnl_in(node) as rtnl:
        rtnl.create("lk2", "ifb")
        before = rtnl.link("lk2")
        assert rtnl.identified("lkbr2") is None
        sent = _counted(rtnl)
        rtnl.set_flags(before, up=True)
        rtnl.set_group(before, 77)
        known = rtnl.identified("lk2")
        assert (known.index, known.name) == (before.index, "lk2") and sent == []
        assert rtnl.link("lk2") == _fresh(node, "lk2") and rtnl.link("lk2").up
        assert len(sent) == 1, "the state was asked for once"
        rtnl.create("lkbr2", "bridge")
        assert rtnl.identified("lkbr2") == _fresh(node, "lkbr2") is not None
        rtnl.set_mac(rtnl.identified("lkbr2"), "02:00:00:00:00:42")
        assert rtnl.identified("lkbr2").mac == "02:00:00:00:00:42", "a new MAC is asked for"
        rtnl.set_master(rtnl.link("lk2"), rtnl.identified("lkbr2"))
        assert rtnl.identified("lkbr2") == _fresh(node, "lkbr2"), "its MAC may follow a port's"
        assert len(sent) == 4
        rtnl.delete("lk2")
        rtnl.create("lk2", "bridge")
        again = rtnl.identified("lk2")
        assert again == _fresh(node, "lk2") and again.kind == "bridge"
        assert len(sent) == 5
