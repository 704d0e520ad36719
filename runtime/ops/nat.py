"""NAT: a network's shared chains and each pod's hostPort DNAT chain.

A network's NAT for one family -- its masquerade chain, its hostPort
dispatch chain and their jumps from the built-in chains -- is one planned
operation, set up in one transaction.  What is set up is what the kernel
has, never what a file says was done: an admin's `iptables -t nat -F` or a
firewall reload takes it away behind netc's back, and the next ADD, apply or
converge of the agent puts it back.  A pod's ADD asks for the chains' shape
only -- each chain's rule count and the rules jumping to it, over netlink
with iptables-nft (no process) -- and trusts a network whose shape is whole;
`netc apply` and the agent compare every rule (`iptables -C`), and say what
they repaired.

A pod's own NAT state is one chain plus one jump from the dispatch chain,
written in a single iptables-restore transaction: no process per rule, no
dump of the table.  The restore text comes from `compiler.planner.iptables`,
which `netc plan` prints it with.  It is removed in one transaction too:
with iptables-nft, the same deletions sent over netlink by the process
itself (`Tables.remove_chain`); with iptables-legacy, the restore text
`netc plan` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from compiler.planner import iptables as rules
from compiler.planner.iptables import Rule
from compiler.planner.ops import Observation, Operation, State, has_params
from compiler.planner.params import IptablesAttachmentParams, IptablesNodeParams
from runtime.iptables import (
    LIVE,
    ListedChains,
    chains,
    remove_chain,
    restore,
    start_restore,
    uses_nf_tables,
)
from runtime.netlink.nftables import Chain
from runtime.ops.base import IN_PLACE_NOW, Handler, KeptByDel, Run, Settles, differs, missing
from runtime.programs import ProgramFailed, Running


class IptablesNodeHandler(KeptByDel, Settles[IptablesNodeParams]):
    """A network's chains and entry jumps for one family, repaired wherever they differ."""

    params = IptablesNodeParams

    def ensure(self, op: Operation[IptablesNodeParams], run: Run) -> bool:
        shape = self._shape(op)
        if not any(shape.values()):
            # None of its chains, so no jump to them either: a fresh node, or a flushed one.
            self.set_up(op, rules.FRESH)
            return True
        if run.quick and _whole(op.params, shape):
            return False
        found = self.observe(op, run)
        if found.state == State.IN_PLACE:
            return False
        self.set_up(op)
        run.note(op, f"repaired: {found.detail}")
        return True

    def settled(self, op: Operation[IptablesNodeParams], run: Run) -> bool:
        """A pod's ADD trusts a NAT whose shape is whole (rule by rule is for a thorough apply)."""
        return _whole(op.params, self._shape(op))

    @staticmethod
    def _shape(op: Operation[IptablesNodeParams]) -> dict[str, Chain | None]:
        params = op.params
        return chains(
            params.family,
            params.table,
            params.chain_names,
            counted={c.name for c in params.chains},
            holders={j.chain for j in params.jumps},
        )

    def set_up(self, op: Operation[IptablesNodeParams], live: rules.Live | None = None) -> None:
        """Write the chains with their rules, and the dispatch chains and jumps `live` lacks.

        `live` is what the node has; by default, its tables asked rule by rule.
        """
        lines = rules.node_setup(op.params, live or LIVE)
        if lines:
            restore(op.params.family, op.params.table, lines)

    def observe(self, op: Operation[IptablesNodeParams], run: Run) -> Observation:
        """Rule by rule, from one listing of each chain concerned (`ListedChains`)."""
        params = op.params
        family, table = params.family, params.table
        live = ListedChains(family, table)
        present = [j for j in params.jumps if live.has_rule(family, table, j.chain, j.rule)]
        problems = [
            f"no jump from {j.chain} to {j.rule[-1]}" for j in params.jumps if j not in present
        ]
        jumped = {j.rule[-1] for j in present}  # a chain jumped to exists: never listed whole
        problems += [
            f"no chain {d}"
            for d in params.dispatch
            if d not in jumped and not live.chain_exists(family, table, d)
        ]
        for chain in params.chains:
            problems += _chain_problems(live, family, table, chain.name, chain.rules)
        everything = len(params.jumps) + len(params.dispatch)
        if len(problems) == everything + len(params.chains):
            return missing()
        return differs("; ".join(problems)) if problems else IN_PLACE_NOW


def _whole(params: IptablesNodeParams, shape: Mapping[str, Chain | None]) -> bool:
    """Whether every chain is there, with its rules, and jumped to as often as planned."""
    jumps = dict.fromkeys(shape, 0)
    for jump in params.jumps:
        jumps[jump.rule[-1]] += 1
    counts = {c.name: len(c.rules) for c in params.chains}
    return all(
        found is not None
        and found.jumps >= jumps[name]
        and found.rules == counts.get(name, found.rules)
        for name, found in shape.items()
    )


def _chain_problems(
    live: ListedChains, family: int, table: str, chain: str, planned: Sequence[Rule]
) -> list[str]:
    count = live.rule_count(chain)
    if count is None:
        return [f"no chain {chain}"]
    absent = [r for r in planned if not live.has_rule(family, table, chain, r)]
    if absent:
        return [
            f"{chain}: {len(absent)} of {len(planned)} rules missing, e.g. "
            f"`{rules.line('-A', chain, absent[0])}`"
        ]
    if count != len(planned):
        return [f"{chain}: {count} rules, want {len(planned)}"]
    return []


IPTABLES_NODE = IptablesNodeHandler()


class IptablesAttachmentHandler(Handler[IptablesAttachmentParams]):
    """A pod's DNAT chain and its jump from the network's dispatch chain.

    Its ADD's iptables-restore runs while the call goes on (`Run.later`):
    the pod's links and shaping are set up meanwhile.
    """

    params = IptablesAttachmentParams

    def ensure(self, op: Operation[IptablesAttachmentParams], run: Run) -> bool:
        params = op.params
        if params.rules is None:
            return False
        lines = rules.attachment_setup(params, LIVE, repeated=run.previous is not None)
        restoring = start_restore(params.family, params.table, lines)
        run.later(op, lambda: self._set_up(op, run, restoring, lines))
        return True

    def _set_up(
        self,
        op: Operation[IptablesAttachmentParams],
        run: Run,
        restoring: Running,
        lines: list[str],
    ) -> None:
        params = op.params
        try:
            restoring.wait()
        except ProgramFailed:
            if LIVE.chain_exists(params.family, params.table, params.dispatch):
                raise
            self._repair_network(op, run)
            restore(params.family, params.table, lines)

    def _repair_network(self, op: Operation[IptablesAttachmentParams], run: Run) -> None:
        """The dispatch chain is gone (the nat table was flushed): set the network up again.

        Under the network's lock, as the node phase would: the lines are
        those of what the node lacks once no other call can change it.
        """
        network = next(
            o
            for o in run.plan.operations
            if has_params(o, IptablesNodeParams)
            and o.params.family == op.params.family
            and o.params.table == op.params.table
        )
        with run.sharing():
            IPTABLES_NODE.set_up(network)

    def remove(self, op: Operation[IptablesAttachmentParams], run: Run) -> None:
        """Delete the chain and its jump: over netlink with iptables-nft (`remove_chain`).

        With iptables-legacy, the restore runs while the call goes on.
        """
        params = op.params
        if uses_nf_tables():
            remove_chain(params.family, params.table, params.chain, params.dispatch)
            return
        restoring = start_restore(params.family, params.table, rules.attachment_teardown(params))
        run.later(op, lambda: self._collected(op, restoring))

    def _collected(self, op: Operation[IptablesAttachmentParams], restoring: Running) -> None:
        """The teardown's program ended; one refused (a rule or chain already gone) is redone.

        Redone as found: a repeated DEL's chain, for one, never was.
        """
        params = op.params
        try:
            restoring.wait()
        except ProgramFailed:
            restore(params.family, params.table, rules.attachment_teardown(params, LIVE))

    def observe(self, op: Operation[IptablesAttachmentParams], run: Run) -> Observation:
        params = op.params
        family, table, chain = params.family, params.table, params.chain
        live = ListedChains(family, table)
        if live.rule_count(chain) is None:
            return missing()
        if not LIVE.has_rule(family, table, params.dispatch, params.jump):
            return differs(f"no jump to {chain} from {params.dispatch}")
        if params.rules is None:
            return IN_PLACE_NOW
        problems = _chain_problems(live, family, table, chain, params.rules)
        return differs(problems[0]) if problems else IN_PLACE_NOW


HANDLERS = (IPTABLES_NODE, IptablesAttachmentHandler())
