"""`netc apply --node`: its exit codes without a kernel to change (no root needed).

What an apply does to a node is tested as root in tests/cluster; here, what
it refuses before touching anything, and the codes it exits with then.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from runtime.cli import main
from tests.conftest import TESTS
from tests.support import ROOT

CLUSTER = "examples/cluster.netdsl"
BAD = str(TESTS / "errors" / "bad-cidr.netdsl")


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    monkeypatch.chdir(ROOT)


def netc(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("args", "plain", "detailed"),
    [
        ([CLUSTER, "--node", "node-z"], 2, 1),
        ([CLUSTER, "--node", "node-a", "--network", "nope"], 2, 1),
        ([CLUSTER], 2, 1),
        ([BAD, "--node", "node-a"], 1, 1),
        ([CLUSTER, "--node", "node-a", "--node-netns", "/nonexistent/netns"], 3, 1),
    ],
)
def test_what_apply_refuses_before_touching_the_node_and_its_exit_codes(args, plain, detailed):
    assert netc("apply", *args).exit_code == plain
    assert netc("apply", *args, "--detailed-exitcode").exit_code == detailed


def test_an_unknown_node_is_named_with_the_ones_there_are():
    result = netc("apply", CLUSTER, "--node", "node-z")
    assert "cluster prod has no node 'node-z' (nodes: node-a, node-b, node-c)" in result.output


def test_a_namespace_that_cannot_be_entered_is_a_system_failure():
    result = netc("apply", CLUSTER, "--node", "node-a", "--node-netns", "/nonexistent/netns")
    assert "cannot open network namespace /nonexistent/netns" in result.output
