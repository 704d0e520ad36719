"""NAT: a network's shared chains and each pod's hostPort DNAT chain.

Node-scoped chains (masquerade, hostPort dispatch) and their jumps from the
built-in chains are set up once per network, family and configuration: a
marker file in the state directory, named by a digest of the operations,
records that it was done, so a steady-state ADD runs no iptables process for
them.  If an admin flushes the nat table, the next pod with host ports finds
its dispatch chain gone, and the setup runs again.

A pod's own NAT state is one chain plus one jump from the dispatch chain,
written in a single iptables-restore transaction, and removed the same way:
no process per rule, no dump of the table.
"""

from __future__ import annotations

import hashlib
import json
import os

from compiler.planner.ops import Observation, Operation
from runtime.executor import Run
from runtime.files import remove as remove_file
from runtime.files import write_atomically
from runtime.iptables import has_rule, restore, rule_count
from runtime.ops import IN_PLACE_NOW, Handler, differs, missing
from runtime.programs import ProgramFailed

NODE_KINDS = ("iptables.chain", "iptables.dispatch", "iptables.jump")


class NodeNat(Handler):
    """Shared chains and entry jumps of a network, set up once per configuration."""

    def ensure(self, op: Operation, run: Run) -> None:
        family = op.params["family"]
        if run.memo.get(("nat", family)):
            return
        run.memo[("nat", family)] = True
        marker = self._marker(run, family)
        if not os.path.exists(marker):
            self._set_up(run, family)
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            write_atomically(marker, b"")

    def repair(self, run: Run, family: int) -> None:
        """Set the chains up again, whatever the marker says (they were flushed)."""
        remove_file(self._marker(run, family))
        run.memo.pop(("nat", family), None)
        self._set_up(run, family)
        write_atomically(self._marker(run, family), b"")

    def _ops(self, run: Run, family: int) -> list[Operation]:
        return [o for o in run.plan.operations
                if o.kind in NODE_KINDS and o.params["family"] == family]

    def _marker(self, run: Run, family: int) -> str:
        params = json.dumps([o.params for o in self._ops(run, family)], sort_keys=True)
        digest = hashlib.sha256(params.encode()).hexdigest()[:16]
        return os.path.join(run.network.state_dir, run.network.name,
                            f"nat-ipv{family}.{digest}")

    def _set_up(self, run: Run, family: int) -> None:
        chains, jumps = [], []
        for op in self._ops(run, family):
            table, chain = op.params["table"], op.params["chain"]
            if op.kind == "iptables.chain":
                chains += [f":{chain} - [0:0]", *(f"-A {chain} {r}" for r in op.params["rules"])]
            elif op.kind == "iptables.dispatch":
                if rule_count(family, table, chain) is None:
                    chains.append(f":{chain} - [0:0]")
            elif not has_rule(family, table, chain, op.params["rule"]):
                jumps.append(f"-A {chain} {op.params['rule']}")
        if chains or jumps:
            restore(family, "nat", chains + jumps)

    def observe(self, op: Operation, run: Run) -> Observation:
        family, table, chain = op.params["family"], op.params["table"], op.params["chain"]
        if op.kind == "iptables.jump":
            return IN_PLACE_NOW if has_rule(family, table, chain, op.params["rule"]) \
                else missing()
        count = rule_count(family, table, chain)
        if count is None:
            return missing()
        if op.kind == "iptables.dispatch":
            return IN_PLACE_NOW
        return _compare_rules(family, table, chain, op.params["rules"], count)


def _compare_rules(family: int, table: str, chain: str, rules: list[str],
                   count: int) -> Observation:
    absent = [r for r in rules if not has_rule(family, table, chain, r)]
    if absent:
        return differs(f"{len(absent)} of {len(rules)} rules missing, e.g. `{absent[0]}`")
    if count != len(rules):
        return differs(f"{count} rules, want {len(rules)}")
    return IN_PLACE_NOW


NODE_NAT = NodeNat()


class AttachmentNat(Handler):
    """A pod's DNAT chain and its jump from the network's dispatch chain."""

    def ensure(self, op: Operation, run: Run) -> None:
        params = op.params
        if params["rules"] is None:
            return
        family, table = params["family"], params["table"]
        chain, dispatch, jump = params["chain"], params["dispatch"], params["jump"]
        lines = [f":{chain} - [0:0]", *(f"-A {chain} {r}" for r in params["rules"])]
        if run.previous is None or not has_rule(family, table, dispatch, jump):
            lines.append(f"-A {dispatch} {jump}")
        try:
            restore(family, table, lines)
        except ProgramFailed:
            if rule_count(family, table, dispatch) is not None:
                raise
            NODE_NAT.repair(run, family)
            restore(family, table, lines)

    def remove(self, op: Operation, run: Run) -> None:
        params = op.params
        family, table = params["family"], params["table"]
        chain, dispatch, jump = params["chain"], params["dispatch"], params["jump"]
        try:
            restore(family, table, [f":{chain} - [0:0]", f"-D {dispatch} {jump}", f"-X {chain}"])
        except ProgramFailed:
            unjump = [f"-D {dispatch} {jump}"] if has_rule(family, table, dispatch, jump) else []
            restore(family, table, [f":{chain} - [0:0]", *unjump, f"-X {chain}"])

    def observe(self, op: Operation, run: Run) -> Observation:
        params = op.params
        family, table, chain = params["family"], params["table"], params["chain"]
        count = rule_count(family, table, chain)
        if count is None:
            return missing()
        if not has_rule(family, table, params["dispatch"], params["jump"]):
            return differs(f"no jump to {chain} from {params['dispatch']}")
        if params["rules"] is None:
            return IN_PLACE_NOW
        return _compare_rules(family, table, chain, params["rules"], count)


HANDLERS = {**dict.fromkeys(NODE_KINDS, NODE_NAT), "iptables.attachment": AttachmentNat()}
