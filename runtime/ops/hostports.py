"""Host ports as a node-wide resource, and stale UDP conntrack entries.

The reference portmap plugin lets two pods claim the same host port: the
first DNAT rule silently wins.  netc keeps one claim file per host port in
`<state-dir>/hostports/` (named `tcp:8080` or `tcp:8080@198.18.0.1`, holding
the owner), taken under a lock, so the second pod's ADD fails with a clear
error naming the first.  A claim on all addresses conflicts with a claim on
one address of the same port, and the other way round.

UDP has no connection teardown: conntrack entries keep sending a host port's
datagrams to the pod that had it.  They are deleted on ADD and on DEL.
"""

from __future__ import annotations

import contextlib
import os

from compiler.errors import Code
from compiler.ir import family_key
from compiler.planner.ops import Observation, Operation
from compiler.planner.params import ConntrackFlushParams, HostportClaim, HostportClaimParams
from runtime import programs
from runtime.files import create_exclusively, locked, locked_temporary, read_text, remove
from runtime.ops.base import (
    IN_PLACE_NOW,
    NOTHING_TO_KEEP,
    Handler,
    OperationRefused,
    Run,
    differs,
    missing,
)


class HostportClaimHandler(Handler[HostportClaimParams]):
    """The node-wide claims of an attachment's host ports."""

    params = HostportClaimParams

    def ensure(self, op: Operation[HostportClaimParams], run: Run) -> bool:
        """Claim every port or none: conflicts are looked for before anything is written."""
        directory, owner, claims = op.params.dir, op.params.owner, op.params.claims
        assert claims is not None, "an ADD knows its ports"
        with _claims_locked(directory):  # which makes the directory, 0700
            for claim in claims:
                holder = _conflict(directory, claim, owner)
                if holder is not None:
                    raise OperationRefused(
                        f"host port {claim.describe()} is already mapped by {holder}",
                        Code.HOSTPORT_TAKEN,
                    )
            created = [
                create_exclusively(os.path.join(directory, str(claim)), owner.encode())
                for claim in claims
            ]
        return any(created)

    def remove(self, op: Operation[HostportClaimParams], run: Run) -> None:
        """Release the claims once the call's DNAT removal and conntrack flush have finished.

        Both finish at the end of the call (`Run.later`), in order; a port
        released before them could be claimed by another network's pod
        whose fresh conntrack entries this call's flush would then delete.
        """
        run.later(op, lambda: self._release(op))

    def _release(self, op: Operation[HostportClaimParams]) -> None:
        directory, owner = op.params.dir, op.params.owner
        if not os.path.isdir(directory):
            return
        with _claims_locked(directory):
            for claim in op.params.claims or claims_in(directory):
                path = os.path.join(directory, str(claim))
                remove(locked_temporary(path))  # a killed ADD's, which would outlive the claim
                if holder_of(directory, claim) == owner:
                    remove(path)

    def observe(self, op: Operation[HostportClaimParams], run: Run) -> Observation:
        directory, owner = op.params.dir, op.params.owner
        claims = op.params.claims or ()
        held = [c for c in claims if holder_of(directory, c) == owner]
        if not held and claims:
            return missing()
        if len(held) != len(claims):
            return differs(f"{len(claims) - len(held)} of {len(claims)} ports not claimed")
        return IN_PLACE_NOW


def _claims_locked(directory: str) -> contextlib.AbstractContextManager[float]:
    return locked(
        os.path.join(directory, "lock"), logged_as="the host-port claims", kind="hostports"
    )


def claims_in(directory: str, port: str | None = None) -> list[HostportClaim]:
    """The claims a directory holds (its files named as claims); none without the directory.

    With `port` (`tcp:8080`), only those of that protocol's port, on any
    address: the ones a claim of it can conflict with, found without
    reading the claims of every other pod.
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    if port is not None:
        names = [name for name in names if name == port or name.startswith(f"{port}@")]
    return [claim for name in names if (claim := HostportClaim.parse(name)) is not None]


def holder_of(directory: str, claim: HostportClaim) -> str | None:
    """Who holds a claim (an attachment's comment), or None when it is not held."""
    return read_text(os.path.join(directory, str(claim)))


def _conflict(directory: str, claim: HostportClaim, owner: str) -> str | None:
    """The holder of a claim that collides with `claim`, if it is not `owner`."""
    for other in claims_in(directory, f"{claim.protocol}:{claim.port}"):
        if other.conflicts(claim):
            holder = holder_of(directory, other)
            if holder is not None and holder != owner:
                return holder
    return None


class ConntrackFlushHandler(Handler[ConntrackFlushParams]):
    """Forget UDP conntrack entries to some host ports (on ADD and again on DEL).

    The flush waits its turn among the work finished at the end of the call
    (`Run.later`), after the DNAT chain's transaction has taken effect:
    an entry made by a datagram that came in before would outlive a flush
    that ran earlier.
    """

    params = ConntrackFlushParams

    def ensure(self, op: Operation[ConntrackFlushParams], run: Run) -> bool:
        run.later(op, lambda: self._flush(op))
        return False

    def remove(self, op: Operation[ConntrackFlushParams], run: Run) -> None:
        run.later(op, lambda: self._flush(op))

    def _flush(self, op: Operation[ConntrackFlushParams]) -> None:
        family = family_key(op.params.family)
        for port in op.params.ports:
            # status 1 means "0 flow entries have been deleted": nothing stale
            programs.run(
                "conntrack",
                "-D",
                "-f",
                family,
                "-p",
                op.params.protocol,
                "--orig-port-dst",
                str(port),
                accept=(0, 1),
            )

    def observe(self, op: Operation[ConntrackFlushParams], run: Run) -> Observation:
        return NOTHING_TO_KEEP


HANDLERS = (HostportClaimHandler(), ConntrackFlushHandler())
