"""A network's NAT is set up from what the kernel has, never from what a file says was done.

Unit tests of the decisions, without a kernel: the node's tables are a fake
that answers the questions the handler asks (the chains' shape, single rules)
and records every transaction written to it.  What iptables does with the
transactions is the kernel suites' business (tests/kernel/test_hostport.py,
tests/cluster/test_drift.py).
"""

from types import SimpleNamespace

import pytest

from compiler.pipeline import compile_sources
from compiler.planner import iptables as rules
from compiler.planner.context import PodContext, PortMapping
from compiler.planner.ops import has_params
from compiler.planner.params import IptablesAttachmentParams, IptablesNodeParams
from compiler.planner.plan import plan
from compiler.source import SourceFile
from runtime.netlink.nftables import Chain
from runtime.ops import nat
from runtime.programs import ProgramFailed

SOURCE = """
network pods {
    bridge cni0 { gateway; masquerade }
    ipam { subnet 10.1.0.0/24 }
    hostport { }
}
"""


class Tables:
    """What the node has, and every transaction written to it."""

    def __init__(self) -> None:
        self.chains: dict[str, list[tuple[str, ...]]] = {}
        self.jumps: list[tuple[str, tuple[str, ...]]] = []
        self.written: list[list[str]] = []

    def chain_exists(self, family, table, chain):
        return chain in self.chains

    def has_rule(self, family, table, chain, arguments):
        rule = tuple(arguments)
        return (chain, rule) in self.jumps or rule in self.chains.get(chain, [])

    def shape(self, family, table, names, counted, holders):
        return {
            n: Chain(
                len(self.chains[n]) if n in counted else None,
                sum(j[1][-1] == n for j in self.jumps if j[0] in holders),
            )
            if n in self.chains
            else None
            for n in names
        }

    def rule_count(self, chain):
        return len(self.chains[chain]) if chain in self.chains else None

    def restore(self, family, table, lines):
        self.written.append(list(lines))

    def set_up_as_planned(self, op):
        """The node as a complete setup of `op` leaves it."""
        self.chains = {c.name: list(c.rules) for c in op.params.chains}
        self.chains |= {d: [] for d in op.params.dispatch}
        self.jumps = [(j.chain, j.rule) for j in op.params.jumps]


@pytest.fixture
def tables(monkeypatch):
    fake = Tables()
    monkeypatch.setattr(nat, "LIVE", fake)
    monkeypatch.setattr(nat, "restore", fake.restore)
    monkeypatch.setattr(nat, "chains", fake.shape)
    monkeypatch.setattr(nat, "ListedChains", lambda family, table: fake)
    return fake


def _node_nat():
    (network,) = compile_sources([SourceFile("nat.netdsl", SOURCE)]).networks
    (op,) = [
        o
        for o in plan(network, PodContext("c1"), "ADD").operations
        if has_params(o, IptablesNodeParams) and o.params.table == "nat"
    ]
    return op


def _run(pod: bool, thorough: bool = True):
    """A pod's call, or a node's apply (`thorough`, or quick as an agent's reaction to peers)."""
    notes = []
    return SimpleNamespace(
        quick=pod or not thorough, notes=notes, note=lambda op, *lines: notes.extend(lines)
    )


def test_a_fresh_node_gets_everything_in_one_transaction_without_asking_rule_by_rule(tables):
    op = _node_nat()
    tables.has_rule = tables.chain_exists = None  # asking would fail
    assert nat.IPTABLES_NODE.ensure(op, _run(pod=True))
    (lines,) = tables.written
    assert lines[0].startswith(":NETC-PO-") and any(":NETC-HP-" in line for line in lines)
    assert sum(line.startswith("-A POSTROUTING") for line in lines) == 1
    assert sum(line.startswith(("-A PREROUTING", "-A OUTPUT")) for line in lines) == 2


@pytest.mark.parametrize("pod", [True, False])
def test_a_whole_setup_is_left_alone(tables, pod):
    op = _node_nat()
    tables.set_up_as_planned(op)
    run = _run(pod)
    assert not nat.IPTABLES_NODE.ensure(op, run)
    assert tables.written == [] and run.notes == []


def test_a_pod_and_a_quick_apply_trust_the_shape_and_a_thorough_apply_checks_every_rule(tables):
    op = _node_nat()
    tables.set_up_as_planned(op)
    masquerade = op.params.chains[0].name
    tables.chains[masquerade][0] = ("-s", "192.0.2.0/24", "-j", "ACCEPT")  # edited by hand
    assert not nat.IPTABLES_NODE.ensure(op, _run(pod=True))
    assert not nat.IPTABLES_NODE.ensure(op, _run(pod=False, thorough=False))
    assert tables.written == []
    run = _run(pod=False)
    assert nat.IPTABLES_NODE.ensure(op, run)
    (lines,) = tables.written
    assert lines[0] == f":{masquerade} - [0:0]"
    assert not any(
        line.startswith(("-A POSTROUTING", "-A PREROUTING", ":NETC-HP-")) for line in lines
    )
    (note,) = run.notes
    assert note.startswith(f"repaired: {masquerade}: 1 of ")


@pytest.mark.parametrize("pod", [True, False])
def test_a_lost_jump_is_repaired_and_said(tables, pod):
    """`iptables -t nat -D POSTROUTING ...`, or a flush that left netc's chains empty."""
    op = _node_nat()
    tables.set_up_as_planned(op)
    lost = tables.jumps.pop(0)
    run = _run(pod)
    assert nat.IPTABLES_NODE.ensure(op, run)
    (lines,) = tables.written
    assert [line for line in lines if line.startswith(f"-A {lost[0]}")] == [
        f"-A {lost[0]} " + " ".join(f'"{a}"' if " " in a else a for a in lost[1])
    ]
    assert run.notes == [f"repaired: no jump from {lost[0]} to {lost[1][-1]}"]


def _dnat_removal():
    (network,) = compile_sources([SourceFile("nat.netdsl", SOURCE)]).networks
    pod = PodContext("c1", port_mappings=(PortMapping(8080, 80),))
    (op,) = [
        o
        for o in plan(network, pod, "DEL").operations
        if has_params(o, IptablesAttachmentParams) and o.params.family == 4
    ]
    return op


def test_with_iptables_nft_a_pod_s_chain_goes_over_netlink_with_no_restore(tables, monkeypatch):
    op = _dnat_removal()
    removed = []
    monkeypatch.setattr(nat, "uses_nf_tables", lambda: True)
    monkeypatch.setattr(nat, "remove_chain", lambda *chain: removed.append(chain) or True)
    run = SimpleNamespace(later=lambda op, finish: pytest.fail("nothing is left for later"))
    nat.IptablesAttachmentHandler().remove(op, run)
    params = op.params
    assert removed == [(4, "nat", params.chain, params.dispatch)]
    assert tables.written == []


class _Refused:
    """An iptables-legacy teardown refused: a repeated DEL's, whose chain never was."""

    def wait(self) -> None:
        raise ProgramFailed(["iptables-restore"], 1, b"iptables-restore: line 3 failed")


def test_with_iptables_legacy_a_refused_teardown_is_redone_as_found(tables, monkeypatch):
    op = _dnat_removal()
    started = []
    monkeypatch.setattr(nat, "uses_nf_tables", lambda: False)
    monkeypatch.setattr(nat, "start_restore", lambda *args: started.append(args) or _Refused())
    later = []
    run = SimpleNamespace(later=lambda op, finish: later.append(finish))
    nat.IptablesAttachmentHandler().remove(op, run)
    assert started == [(4, "nat", rules.attachment_teardown(op.params))]
    assert tables.written == [] and len(later) == 1, "the restore runs beside the call"
    later[0]()
    assert tables.written == [rules.attachment_teardown(op.params, tables)]
