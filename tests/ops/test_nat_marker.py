"""A network's NAT is set up once per configuration: the marker logic, without a kernel.

The restore transaction is recorded instead of run; what iptables does with
it is the kernel suites' business (tests/kernel/test_hostport.py).
"""

from types import SimpleNamespace

import pytest

from compiler import datatypes
from compiler.pipeline import compile_sources
from compiler.planner.context import PodContext
from compiler.planner.ops import Kind
from compiler.planner.plan import plan
from compiler.source import SourceFile
from runtime.ops import nat

SOURCE = """
network pods {
    bridge cni0 { gateway; masquerade }
    ipam { subnet 10.1.0.0/24 }
    hostport { }
}
"""


class Tables:
    """What the node has, and every transaction written to it."""

    def __init__(self, chains=(), rules=()) -> None:
        self.chains, self.rules, self.written = set(chains), set(rules), []

    def chain_exists(self, family, table, chain):
        return chain in self.chains

    def has_rule(self, family, table, chain, arguments):
        return (chain, tuple(arguments)) in self.rules

    def rule_count(self, family, table, chain):
        if chain not in self.chains:
            return None
        return sum(held == chain for held, _ in self.rules)

    def restore(self, family, table, lines):
        self.written.append(list(lines))


@pytest.fixture
def tables(monkeypatch):
    fake = Tables()
    monkeypatch.setattr(nat, "LIVE", fake)
    monkeypatch.setattr(nat, "restore", fake.restore)
    monkeypatch.setattr(nat, "rule_count", fake.rule_count)
    return fake


def compile_one(text):
    (network,) = compile_sources([SourceFile("nat.netdsl", text)]).networks
    return network


def _node_nat(network, state_dir, table="nat"):
    """The network's operation for `table` in IPv4, and a pod's call (a node's: `pod` None)."""
    network = datatypes.replace(network, state_dir=str(state_dir))
    (op,) = [o for o in plan(network, PodContext("c1"), "ADD").operations
             if o.kind == Kind.NODE_NAT and o.params["table"] == table]
    return op, SimpleNamespace(pod=PodContext("c1"))


def test_the_first_pod_sets_the_network_up_and_later_ones_run_nothing(tables, tmp_path):
    op, run = _node_nat(compile_one(SOURCE), tmp_path)
    nat.NODE_NAT.ensure(op, run)
    nat.NODE_NAT.ensure(op, run)
    assert len(tables.written) == 1
    (lines,) = tables.written
    assert lines[0].startswith(":NETC-PO-") and any(":NETC-HP-" in line for line in lines)
    assert sum(line.startswith("-A POSTROUTING") for line in lines) == 1


def test_a_changed_configuration_has_another_marker(tables, tmp_path):
    op, run = _node_nat(compile_one(SOURCE), tmp_path)
    other, _ = _node_nat(compile_one(SOURCE.replace("masquerade", "")), tmp_path)
    assert nat.marker_path(op) != nat.marker_path(other)
    assert nat.marker_path(op).startswith(f"{tmp_path}/pods/nat-ipv4.")
    nat.NODE_NAT.ensure(op, run)
    nat.NODE_NAT.ensure(other, run)
    assert len(tables.written) == 2


def test_a_dispatch_chain_and_jumps_already_there_are_left_alone(tables, tmp_path):
    op, run = _node_nat(compile_one(SOURCE), tmp_path)
    tables.chains |= set(op.params["dispatch"])
    tables.rules |= {(j["chain"], tuple(j["rule"])) for j in op.params["jumps"]}
    nat.NODE_NAT.ensure(op, run)
    (lines,) = tables.written
    assert not any(line.startswith(("-A POSTROUTING", "-A PREROUTING", ":NETC-HP-"))
                   for line in lines)


def test_set_up_runs_again_whatever_the_marker_says(tables, tmp_path):
    op, run = _node_nat(compile_one(SOURCE), tmp_path)
    nat.NODE_NAT.ensure(op, run)
    nat.NODE_NAT.set_up(op, nat.marker_path(op))
    assert len(tables.written) == 2


def test_a_node_apply_looks_at_the_tables_not_the_marker(tables, tmp_path):
    """The agent's converge repairs a flushed table the marker still calls set up."""
    op, pods_call = _node_nat(compile_one(SOURCE), tmp_path, table="raw")
    node_apply = SimpleNamespace(pod=None)
    nat.NODE_NAT.ensure(op, pods_call)
    assert nat.marker_path(op).startswith(f"{tmp_path}/pods/raw-ipv4.")
    assert nat.NODE_NAT.ensure(op, node_apply)
    assert len(tables.written) == 2
    tables.chains |= {c["name"] for c in op.params["chains"]}
    tables.rules |= {(c["name"], tuple(r)) for c in op.params["chains"] for r in c["rules"]}
    tables.rules |= {(j["chain"], tuple(j["rule"])) for j in op.params["jumps"]}
    assert not nat.NODE_NAT.ensure(op, node_apply)
    assert len(tables.written) == 2
