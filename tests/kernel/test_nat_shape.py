"""The shape of a network's NAT chains as a pod's ADD reads it, from both iptables backends.

iptables-nft's chains are read over netlink (nf_tables), iptables-legacy's
from one iptables-save; both must give the same counts for the same rules,
and say "no chain" for a chain that is not there.
"""

from __future__ import annotations

import pytest

from runtime import iptables
from runtime.deadline import deadline
from runtime.iptables import _saved_chains
from runtime.netlink.nftables import Chain, Commits, Tables
from runtime.netns import node_namespace
from runtime.programs import ProgramFailed
from tests.kernel.lab import Namespaces

SETUP = """*nat
:NETC-PO - [0:0]
:NETC-HP - [0:0]
:NETC-EMPTY - [0:0]
-A NETC-PO -d 10.244.0.0/16 -j RETURN
-A NETC-PO -s 10.244.1.0/24 -j MASQUERADE
-A NETC-HP -p tcp --dport 8080 -j NETC-EMPTY
-A POSTROUTING -m comment --comment "netc network pods" -j NETC-PO
-A PREROUTING -m addrtype --dst-type LOCAL -j NETC-HP
-A OUTPUT -m addrtype --dst-type LOCAL -g NETC-HP
COMMIT
"""
EXPECTED = {
    "NETC-PO": Chain(2, 1),
    "NETC-HP": Chain(None, 2),
    "NETC-EMPTY": Chain(0, 1),
    "NETC-NONE": None,
}
COUNTED = {"NETC-PO", "NETC-EMPTY", "NETC-NONE"}
"""NETC-HP stands for a dispatch chain: its rules are the pods', never counted."""
HOLDERS = {"POSTROUTING", "PREROUTING", "OUTPUT", "NETC-HP"}
AFTER_FLUSH = {"NETC-PO": Chain(0, 0), "NETC-HP": Chain(None, 0), "NETC-EMPTY": Chain(0, 0)}
"""Empty chains jumped to by none: each still found (asked for by name)."""


@pytest.fixture
def netns(tmp_path):
    with Namespaces(tmp_path) as namespaces:
        yield namespaces, namespaces.netns("shape")


@pytest.fixture
def shaped(netns):
    """The namespace with SETUP's rules, and a netfilter socket in it."""
    namespaces, name = netns
    namespaces.run(name, "iptables-nft-restore", "--noflush", stdin=SETUP)
    with node_namespace(name):
        tables = Tables()
    try:
        yield namespaces, name, tables
    finally:
        tables.close()


def test_nf_tables_gives_each_chains_rules_and_jumps(shaped):
    namespaces, name, tables = shaped
    found = tables.shape(4, "nat", EXPECTED, COUNTED, HOLDERS)
    flushed = namespaces.run(name, "iptables-nft", "-t", "nat", "-F")
    after = tables.shape(4, "nat", EXPECTED, COUNTED, HOLDERS)
    elsewhere = tables.shape(4, "filter", EXPECTED, COUNTED, HOLDERS)
    assert flushed.returncode == 0
    assert found == EXPECTED
    assert after == {**AFTER_FLUSH, "NETC-NONE": None}
    assert elsewhere == dict.fromkeys(EXPECTED), "another table has none of them"


def test_only_the_holders_jumps_count(shaped):
    _, _, tables = shaped
    found = tables.shape(4, "nat", ["NETC-HP", "NETC-EMPTY"], (), ["OUTPUT"])
    assert found == {"NETC-HP": Chain(None, 1), "NETC-EMPTY": Chain(None, 0)}


def test_iptables_save_of_legacy_gives_the_same(netns):
    namespaces, name = netns
    namespaces.run(name, "iptables-legacy-restore", "--noflush", stdin=SETUP)
    saved = namespaces.run(name, "iptables-legacy-save", "-t", "nat").stdout
    assert _saved_chains(saved, EXPECTED, COUNTED, HOLDERS) == EXPECTED


LISTED = """*nat
:NETC-PO - [0:0]
-A NETC-PO -i br0 -d 127.0.0.0/8 -j RETURN
-A NETC-PO -s 10.244.1.0/24 -m comment --comment "netc network pods" -j MASQUERADE
-A POSTROUTING -m comment --comment "netc network pods" -j NETC-PO
COMMIT
"""


def test_listed_chains_find_rules_as_written_with_one_process_per_chain(netns, monkeypatch):
    """A rule written `-i br0 -d ...` is listed `-d ... -i br0`: still found without -C."""
    namespaces, name = netns
    namespaces.run(name, "iptables-nft-restore", "--noflush", stdin=LISTED)
    asked = []
    monkeypatch.setattr(
        iptables.LIVE, "has_rule", lambda *question: asked.append(question) or False
    )
    listed = iptables.ListedChains(4, "nat")
    masquerade = ("-s", "10.244.1.0/24", "-m", "comment", "--comment", "netc network pods")
    with node_namespace(name):
        found = [
            listed.has_rule(
                4, "nat", "NETC-PO", ("-i", "br0", "-d", "127.0.0.0/8", "-j", "RETURN")
            ),
            listed.has_rule(4, "nat", "NETC-PO", (*masquerade, "-j", "MASQUERADE")),
            listed.has_rule(4, "nat", "NETC-PO", ("-s", "10.9.0.0/16", "-j", "MASQUERADE")),
        ]
        counts = (listed.rule_count("NETC-PO"), listed.rule_count("NETC-NONE"))
    assert found == [True, True, False]
    assert len(asked) == 1, "only the rule the listing does not show is asked for"
    assert counts == (2, None)


DNAT = """*nat
:NETC-HP - [0:0]
:NETC-DN - [0:0]
-A NETC-DN -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.2:80
-A NETC-HP -p tcp -m tcp --dport 8080 -j NETC-DN
COMMIT
"""
TEARDOWN = (":NETC-DN - [0:0]", "-D NETC-HP -p tcp -m tcp --dport 8080 -j NETC-DN", "-X NETC-DN")


def test_a_followed_teardown_is_committed_before_its_program_is_waited_for(netns):
    """`Removing.committed` returns once nf_tables announced the commit: the chain is gone
    then, whatever iptables-restore still does on its way out; `wait` collects it."""
    namespaces, name = netns
    namespaces.run(name, "iptables-nft-restore", "--noflush", stdin=DNAT)
    with node_namespace(name):
        assert iptables.uses_nf_tables(), "the node's iptables-restore is iptables-nft's"
        removing = iptables.Removing(4, "nat", "NETC-DN", TEARDOWN, follow=True)
        committed = removing.committed()
        tables = Tables()
        then = tables.shape(4, "nat", ["NETC-DN"], ["NETC-DN"], ["NETC-HP"])
        tables.close()
        removing.wait()
    assert committed
    assert then == {"NETC-DN": None}


@pytest.mark.parametrize("follow", [False, True], ids=["unfollowed", "followed"])
def test_a_teardown_not_committed_is_known_by_its_program_s_end(netns, follow):
    """Unfollowed, `committed` says nothing; a refused transaction (its chain is not there)
    ends the program without a commit, and `wait` says why."""
    _, name = netns
    with node_namespace(name):
        removing = iptables.Removing(4, "nat", "NETC-DN", TEARDOWN, follow=follow)
        assert not removing.committed()
        with pytest.raises(ProgramFailed):
            removing.wait()


def test_a_commit_from_another_port_is_the_teardown_s_once_its_chain_is_gone(netns, monkeypatch):
    """The program's port may be taken by another socket of the namespace (a process of
    another pid namespace with the same pid): its commit comes from elsewhere, and the
    chain's absence says it is in.  Otherwise its held program would wait forever."""
    namespaces, name = netns
    namespaces.run(name, "iptables-nft-restore", "--noflush", stdin=DNAT)
    announced = Commits.ports
    monkeypatch.setattr(Commits, "ports", lambda self: {p + 1 for p in announced(self) if p})
    with node_namespace(name):
        removing = iptables.Removing(4, "nat", "NETC-DN", TEARDOWN, follow=True)
        with deadline(10):  # not seen as committed, the held program would never end
            committed = removing.committed()
        gone = removing.gone()
        removing.wait()
    assert committed and gone


def test_with_iptables_legacy_a_followed_teardown_is_waited_for(netns):
    """iptables-legacy announces no commit: the program is not held, and ends by itself."""
    namespaces, name = netns
    namespaces.run(name, "iptables-legacy-restore", "--noflush", stdin=DNAT)
    iptables.use_backend("legacy")
    try:
        with node_namespace(name), deadline(10):  # held, it would never end
            removing = iptables.Removing(4, "nat", "NETC-DN", TEARDOWN, follow=True)
            committed = removing.committed()
            removing.wait()
    finally:
        iptables.use_backend(None)
    saved = namespaces.run(name, "iptables-legacy-save", "-t", "nat").stdout
    assert not committed
    assert "NETC-DN" not in saved and ":NETC-HP" in saved


def test_the_socket_a_process_keeps_answers_for_the_namespace_it_asks_in(tmp_path):
    """`iptables.chains` keeps its netfilter socket (releasing one may wait), one per
    process: asked in another namespace, it answers for that one."""
    with Namespaces(tmp_path) as namespaces:
        a, b = namespaces.netns("kept-a"), namespaces.netns("kept-b")
        namespaces.run(a, "iptables-nft-restore", "--noflush", stdin=SETUP)
        found = []
        for name in (a, b, a, a):
            with node_namespace(name):
                found.append(iptables.chains(4, "nat", ["NETC-PO"], ["NETC-PO"], ["POSTROUTING"]))
    assert found == [{"NETC-PO": Chain(2, 1)}, {"NETC-PO": None}] + [{"NETC-PO": Chain(2, 1)}] * 2
