"""The shape of a network's NAT chains as a pod's ADD reads it, from both iptables backends.

iptables-nft's chains are read over netlink (nf_tables), iptables-legacy's
from one iptables-save; both must give the same counts for the same rules,
and say "no chain" for a chain that is not there.  A pod's chain and the
jumps to it are removed over netlink too, in one transaction.
"""

from __future__ import annotations

import errno

import pytest

from runtime import iptables
from runtime.iptables import _saved_chains
from runtime.netlink.channel import NetlinkError
from runtime.netlink.nftables import Chain, Tables
from runtime.netns import node_namespace
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


DISPATCH = """*{table}
:NETC-HP - [0:0]
:NETC-DN-A - [0:0]
:NETC-DN-B - [0:0]
-A NETC-DN-A -p tcp -m tcp --dport 8080 -j DNAT --to-destination {a}
-A NETC-DN-B -p tcp -m tcp --dport 9090 -j DNAT --to-destination {b}
-A NETC-HP -p tcp -m tcp --dport 8080 -m comment --comment "pod a" -j NETC-DN-A
-A NETC-HP -p tcp -m tcp --dport 9090 -m comment --comment "pod b NETC-DN-A" -j NETC-DN-B
-A NETC-HP -p tcp -m tcp --dport 8081 -m comment --comment "pod a again" -j NETC-DN-A
-A PREROUTING -m addrtype --dst-type LOCAL -j NETC-HP
COMMIT
"""
PODS = {4: ("10.244.1.2:80", "10.244.1.3:80"), 6: ("[fd00::2]:80", "[fd00::3]:80")}
FAMILY_TOOLS = {4: "iptables-nft", 6: "ip6tables-nft"}
B_DNAT = {
    family: ("-p", "tcp", "-m", "tcp", "--dport", "9090", "-j", "DNAT", "--to-destination", b)
    for family, (_, b) in PODS.items()
}


def dispatching(namespaces: Namespaces, name: str, family: int) -> None:
    """Two pods' DNAT chains behind a dispatch chain; pod a's is jumped to twice, and its name
    is in the comment of pod b's jump (a match on the bytes alone would take that jump)."""
    a, b = PODS[family]
    text = DISPATCH.format(table="nat", a=a, b=b)
    namespaces.run(name, f"{FAMILY_TOOLS[family]}-restore", "--noflush", stdin=text)


def saved(namespaces: Namespaces, name: str, family: int) -> str:
    return namespaces.run(name, f"{FAMILY_TOOLS[family]}-save", "-t", "nat").stdout


@pytest.mark.parametrize("family", [4, 6])
def test_a_pod_s_chain_and_the_jumps_to_it_go_in_one_transaction(netns, family):
    """`Tables.remove_chain`: the chain and both jumps to it go, pod b's stays whole and
    iptables-nft reads and changes the table as before; a second removal finds nothing."""
    namespaces, name = netns
    dispatching(namespaces, name, family)
    with node_namespace(name):
        tables = Tables()
        try:
            removed = tables.remove_chain(family, "nat", "NETC-DN-A", "NETC-HP")
            again = tables.remove_chain(family, "nat", "NETC-DN-A", "NETC-HP")
        finally:
            tables.close()
    after = saved(namespaces, name, family)
    tool = FAMILY_TOOLS[family]
    checked = namespaces.run(
        name, tool, "-t", "nat", "-C", "NETC-DN-B", *B_DNAT[family], check=False
    )
    assert (removed, again) == (True, False)
    assert not _of_chain(after, "NETC-DN-A"), after
    assert ":NETC-DN-B" in after and '--comment "pod b NETC-DN-A" -j NETC-DN-B' in after, after
    assert checked.returncode == 0, checked.stderr
    assert namespaces.run(name, tool, "-t", "nat", "-X", "NETC-DN-B", check=False).returncode, (
        "iptables-nft still sees pod b's jump"
    )


def test_on_a_node_without_a_nat_table_there_is_nothing_to_remove(netns):
    """A DEL whose network never set its NAT up (or a node flushed of it) finds no chain."""
    _, name = netns
    with node_namespace(name):
        tables = Tables()
        try:
            assert not tables.remove_chain(4, "nat", "NETC-DN-A", "NETC-HP")
        finally:
            tables.close()


def test_a_chain_jumped_to_from_elsewhere_is_refused_whole(netns):
    """A jump netc did not make (here from OUTPUT) keeps the chain: the kernel refuses the
    transaction, and the dispatch chain keeps its jumps too."""
    namespaces, name = netns
    dispatching(namespaces, name, 4)
    namespaces.run(name, "iptables-nft", "-t", "nat", "-A", "OUTPUT", "-j", "NETC-DN-A")
    before = saved(namespaces, name, 4)
    with node_namespace(name):
        tables = Tables()
        try:
            with pytest.raises(NetlinkError) as refused:
                tables.remove_chain(4, "nat", "NETC-DN-A", "NETC-HP")
        finally:
            tables.close()
    assert refused.value.errno == errno.EBUSY
    assert "delete chain NETC-DN-A of the nat table" in str(refused.value)
    assert _rules_of(saved(namespaces, name, 4)) == _rules_of(before)


def test_a_jump_gone_since_its_listing_sends_the_removal_back_to_the_listing(netns, monkeypatch):
    """Between the listing and the commit, another process deletes the jump and writes it
    again (a new handle): the kernel refuses the stale handle (ENOENT), and the removal
    lists the jumps again and deletes the new one."""
    namespaces, name = netns
    dispatching(namespaces, name, 4)
    listed = Tables._jumps
    listings = []
    jump = ("-p", "tcp", "-m", "tcp", "--dport", "8080", "-m", "comment", "--comment")
    jump += ("pod a", "-j", "NETC-DN-A")

    def rewritten_after_listing(self, *args):
        handles = listed(self, *args)
        listings.append(handles)
        if len(listings) == 1:
            for verb in ("-D", "-I"):
                namespaces.run(name, "iptables-nft", "-t", "nat", verb, "NETC-HP", *jump)
        return handles

    monkeypatch.setattr(Tables, "_jumps", rewritten_after_listing)
    with node_namespace(name):
        tables = Tables()
        try:
            removed = tables.remove_chain(4, "nat", "NETC-DN-A", "NETC-HP")
        finally:
            tables.close()
    assert removed and len(listings) == 2
    assert listings[0] != listings[1], "the rewritten jump has a handle of its own"
    assert not _of_chain(saved(namespaces, name, 4), "NETC-DN-A")


def _of_chain(text: str, chain: str) -> list[str]:
    """The lines of iptables-save's text that declare `chain`, append to it or jump to it."""
    return [
        line
        for line in text.splitlines()
        if line.startswith((f":{chain} ", f"-A {chain} ")) or line.endswith(f"-j {chain}")
    ]


def _rules_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


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
