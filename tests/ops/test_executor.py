"""The executor's order of work when an operation finishes later (`Run.later`), without a kernel.

Handlers are replaced by ones that only log what is asked of them; what the
kernel does with the real ones is the kernel suites' business
(tests/kernel/test_lifecycle.py undoes a failed ADD on a real node).
"""

import pytest

from compiler.pipeline import compile_sources
from compiler.planner.context import PodContext, bandwidth_from_option, mapping_from_option
from compiler.planner.ops import Kind, has_params
from compiler.planner.params import HostportClaimParams
from compiler.planner.plan import plan
from compiler.source import SourceFile
from runtime import executor
from runtime.ops import hostports
from runtime.ops.base import Run

SOURCE = """
network pods {
    bridge cni0 { gateway; masquerade }
    ipam { subnet 10.1.0.0/24 }
    hostport { }
    bandwidth { }
}
"""


class Logged:
    """A handler that logs `(what, kind)`; DNAT's work finishes later, failing if asked to."""

    def __init__(self, log: list, fail: dict) -> None:
        self.log, self.fail = log, fail

    def ensure(self, op, run):
        self._act("ensure", op, run)
        return True

    def remove(self, op, run):
        self._act("remove", op, run)

    def _act(self, what, op, run):
        self.log.append((what, op.kind))
        if self.fail.get((what, op.kind)) == "now":
            raise RuntimeError(f"{what} refused")
        if op.kind == Kind.IPTABLES_ATTACHMENT:
            run.later(op, lambda: self._finish(what, op))

    def _finish(self, what, op):
        self.log.append((f"finish {what}", op.kind))
        if self.fail.get((what, op.kind)) == "later":
            raise RuntimeError(f"{what} refused when finished")


@pytest.fixture
def scene(monkeypatch):
    """A pod's ADD and DEL plans with a DNAT chain and shaping; handlers that log."""
    (network,) = compile_sources([SourceFile("x.netdsl", SOURCE)]).networks
    pod = PodContext(
        "c1",
        port_mappings=(mapping_from_option("8080:80"),),
        bandwidth=bandwidth_from_option("ingress=10M,egress=10M"),
    )
    log, fail = [], {}
    handler = Logged(log, fail)
    monkeypatch.setattr(executor, "handler_for", lambda op: handler)

    def run(command):
        return Run(host=None, plan=plan(network, pod, command), pod=pod)

    return run, log, fail


def test_the_operations_after_a_program_run_before_it_is_finished(scene):
    run, log, _ = scene
    add = run("ADD")
    executor.apply(add)
    kinds = [op.kind for op in add.plan.operations]
    after_dnat = kinds[kinds.index(Kind.IPTABLES_ATTACHMENT) + 1]
    finished = ("finish ensure", Kind.IPTABLES_ATTACHMENT)
    assert log.index(("ensure", after_dnat)) < log.index(finished)
    assert log[-1] == finished
    assert not add.completions


def test_a_program_failing_when_finished_fails_the_add_and_everything_is_undone(scene):
    run, log, fail = scene
    fail[("ensure", Kind.IPTABLES_ATTACHMENT)] = "later"
    add = run("ADD")
    with pytest.raises(executor.OperationFailed, match=r"DNAT chain.*refused when finished"):
        executor.apply(add)
    undone = [kind for what, kind in log if what == "remove"]
    owned = [op.kind for op in reversed(add.plan.operations) if op.removed_by_del]
    assert undone == owned
    assert log.index(("finish ensure", Kind.IPTABLES_ATTACHMENT)) < log.index(("remove", owned[0]))


def test_a_later_failure_waits_for_the_running_program_before_undoing(scene):
    run, log, fail = scene
    add = run("ADD")
    kinds = [op.kind for op in add.plan.operations]
    failing = kinds[kinds.index(Kind.IPTABLES_ATTACHMENT) + 1]
    fail[("ensure", failing)] = "now"
    with pytest.raises(executor.OperationFailed, match="ensure refused"):
        executor.apply(add)
    first_undo = next(i for i, (what, _) in enumerate(log) if what == "remove")
    assert log.index(("finish ensure", Kind.IPTABLES_ATTACHMENT)) < first_undo
    # the DNAT's own removal is a program too: finished before the call gives up
    assert log[-1] == ("finish remove", Kind.IPTABLES_ATTACHMENT)


def test_a_del_reports_a_program_that_failed_after_trying_every_removal(scene):
    run, log, fail = scene
    fail[("remove", Kind.IPTABLES_ATTACHMENT)] = "later"
    delete = run("DEL")
    failures = executor.remove(delete)
    assert [f.op.kind for f in failures] == [Kind.IPTABLES_ATTACHMENT]
    tried = [kind for what, kind in log if what == "remove"]
    assert tried == [op.kind for op in delete.plan.operations]
    assert log[-1] == ("finish remove", Kind.IPTABLES_ATTACHMENT)


def test_a_del_releases_host_port_claims_only_after_its_nat_and_flush_have_finished(
    monkeypatch, tmp_path
):
    """Another network's pod could take a released port; this DEL's flush must not hit it."""
    source = SOURCE.replace("network pods {", f'network pods {{\n    state-dir "{tmp_path}"')
    (network,) = compile_sources([SourceFile("x.netdsl", source)]).networks
    pod = PodContext("c1", port_mappings=(mapping_from_option("8053:53/udp"),), bandwidth=None)
    claims = hostports.HostportClaimHandler()
    (claim,) = [
        op for op in plan(network, pod, "ADD").operations if has_params(op, HostportClaimParams)
    ]
    claims.ensure(claim, None)
    claimed = [tmp_path / "hostports" / str(c) for c in claim.params.claims]
    assert all(path.exists() for path in claimed)
    log, seen = [], []
    logged = Logged(log, {})

    def handler(op):
        return claims if op.kind == Kind.HOSTPORT_CLAIM else logged

    def flush_sees_claims(what, op):
        seen.append(all(path.exists() for path in claimed))
        log.append((f"finish {what}", op.kind))

    monkeypatch.setattr(executor, "handler_for", handler)
    monkeypatch.setattr(logged, "_finish", flush_sees_claims)
    monkeypatch.setattr(logged, "_act", _deferring_flush(logged))
    delete = Run(host=None, plan=plan(network, pod, "DEL"), pod=pod)
    assert executor.remove(delete) == []
    assert ("finish remove", Kind.CONNTRACK_FLUSH) in log
    assert seen and all(seen), "a claim was released before the DNAT and the flush finished"
    assert not any(path.exists() for path in claimed)


def _deferring_flush(logged):
    """Logged's action, with the conntrack flush finishing later too, as the real one does."""
    act = logged._act

    def deferring(what, op, run):
        act(what, op, run)
        if op.kind == Kind.CONNTRACK_FLUSH:
            run.later(op, lambda: logged._finish(what, op))

    return deferring
