"""Traffic shaping: TBF qdiscs, the ingress qdisc and the redirect to the ifb.

Traffic *to* the pod leaves the node through the host-side veth, so its
root TBF shapes it.  Traffic *from* the pod arrives on the host veth, where
only an ingress qdisc can see it; a u32 match-all filter redirects it to the
attachment's ifb, whose root TBF shapes it.  All of it is replaced in place
on a repeated ADD (never "file exists"), and goes away with the veth and the
ifb on DEL.
"""

from __future__ import annotations

from compiler.planner.ops import Observation, Operation, Where
from compiler.planner.params import TcIngressParams, TcRedirectParams, TcTbfParams
from runtime.netlink import tc
from runtime.ops.base import (
    IN_PLACE_NOW,
    Handler,
    KeptByDel,
    Run,
    differs,
    identified_link,
    missing,
)

BURST_TOLERANCE = 0.02
"""The kernel stores the bucket as a time in 64 ns ticks; reading it back rounds."""


class TcTbfHandler(KeptByDel, Handler[TcTbfParams]):
    """A root TBF with the planned rate, bucket and queue (bytes)."""

    params = TcTbfParams

    def ensure(self, op: Operation[TcTbfParams], run: Run) -> bool:
        want = op.params
        tc.replace_tbf(
            run.host.node,
            identified_link(run, Where.NODE, want.dev),
            want.rate,
            want.burst,
            want.limit,
        )
        return True

    def observe(self, op: Operation[TcTbfParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.dev)
        if link is None:
            return missing()
        found = tc.root_tbf(run.host.node, link)
        if found is None:
            return missing("no tbf root qdisc")
        want = op.params
        burst_off = abs(found.burst - want.burst) > BURST_TOLERANCE * want.burst
        if found.rate != want.rate or found.limit != want.limit or burst_off:
            return differs(
                f"rate {found.rate} B/s burst {found.burst} B limit {found.limit} B, "
                f"want {want.rate}/{want.burst}/{want.limit}"
            )
        return IN_PLACE_NOW


class TcIngressHandler(KeptByDel, Handler[TcIngressParams]):
    """The ingress qdisc of the host veth."""

    params = TcIngressParams

    def ensure(self, op: Operation[TcIngressParams], run: Run) -> bool:
        return tc.ensure_ingress(run.host.node, identified_link(run, Where.NODE, op.params.dev))

    def observe(self, op: Operation[TcIngressParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.dev)
        if link is None:
            return missing()
        present = tc.TC_H_INGRESS in tc.qdiscs(run.host.node, link)
        return IN_PLACE_NOW if present else missing()


class TcRedirectHandler(KeptByDel, Handler[TcRedirectParams]):
    """Everything arriving on the host veth redirected to the ifb."""

    params = TcRedirectParams

    def ensure(self, op: Operation[TcRedirectParams], run: Run) -> bool:
        """Exactly one redirect, to the planned ifb.

        Other filters -- one left pointing at an ifb an interrupted DEL
        deleted -- go with the ingress qdisc, which is made again.
        """
        node = run.host.node
        link = identified_link(run, Where.NODE, op.params.dev)
        target = identified_link(run, Where.NODE, op.params.to)
        targets = tc.redirect_targets(node, link)
        if targets == [target.index]:
            return False
        if targets:
            tc.delete_ingress(node, link)
            tc.ensure_ingress(node, link)
        tc.add_redirect(node, link, target)
        return True

    def observe(self, op: Operation[TcRedirectParams], run: Run) -> Observation:
        link = run.host.link(Where.NODE, op.params.dev)
        target = run.host.link(Where.NODE, op.params.to)
        if link is None or target is None:
            return missing()
        targets = tc.redirect_targets(run.host.node, link)
        if targets == [target.index]:
            return IN_PLACE_NOW
        if not targets:
            return missing()
        return differs(
            f"{len(targets)} redirects, to interfaces {targets}; want one to {target.index}"
        )


HANDLERS = (TcTbfHandler(), TcIngressHandler(), TcRedirectHandler())
