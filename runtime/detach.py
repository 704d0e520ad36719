"""Detaching pods: one DEL, and the collection of every attachment whose container is gone.

`netc-cni` DEL, the CNI GC command and `netc gc` all end here, so a leaked
attachment is removed exactly as its DEL would have removed it.  An
attachment the node still knows of -- by its record, an address it holds,
a host port it claims -- and whose container is not alive gets its DEL: with
its record when there is one, else with an unknown context, whose plan
removes whatever the attachment could have (its names are derived).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from compiler.datatypes import frozen
from compiler.errors import NetcError
from compiler.ir import Network
from compiler.planner.context import PodContext
from compiler.planner.names import hostport_claims_path, owner_of, record_path
from compiler.planner.plan import plan
from runtime import attachment_records as records
from runtime import executor
from runtime.attachment_records import Record
from runtime.host import Host
from runtime.ipam_store import IpamStore
from runtime.ops.hostports import claims_in, holder_of

Alive = Callable[[str, str], bool]
"""Whether the attachment (container ID, ifname) belongs to a living container."""


def detach(
    network: Network,
    pod: PodContext,
    record: Record,
    netns: str | None,
    host: Host | None = None,
    *,
    answer_first: bool = False,
) -> Callable[[], None] | None:
    """Run the DEL plan of one attachment; every failure is tried past, then reported.

    With `answer_first` and a `host` the caller keeps open, the removals the
    DEL leaves for after its answer (`executor.remove`) are returned, to be
    called then; they raise as the DEL would.
    """
    the_plan = plan(network, pod, "DEL")
    own = host is None
    run = executor.Run(
        host or Host(netns), the_plan, pod, record, answer_first=answer_first and not own
    )
    try:
        _raise_any(executor.remove(run))
    finally:
        if own:
            run.host.close()
    if not run.after_answer:
        return None
    return lambda: _raise_any(executor.remove_after_answer(run))


def _raise_any(failures: list[executor.OperationFailed]) -> None:
    if failures:
        raise NetcError("; ".join(str(f) for f in failures), failures[0].code)


@frozen
class Collected:
    """A dead attachment and what the node knew of it."""

    container_id: str
    ifname: str
    evidence: tuple[str, ...]
    """Where it was found: its record, the addresses it held, the host ports it claimed."""
    error: str | None = None


def known_attachments(network: Network) -> dict[tuple[str, str], list[str]]:
    """Every attachment the node knows of for a network, with where it was found."""
    known: dict[tuple[str, str], list[str]] = {}
    for path in records.paths(os.path.join(network.state_dir, network.name)):
        record = records.load(path)
        if record is not None:
            known.setdefault((record.context.container_id, record.context.ifname), []).append(
                "record"
            )
    if network.ipam is not None:
        for address, owner in IpamStore(network.ipam.data_dir, network.name).holders().items():
            known.setdefault(owner, []).append(f"address {address}")
    directory = hostport_claims_path(network.state_dir)
    for claim in claims_in(directory):
        claimant = owner_of(holder_of(directory, claim) or "")
        if claimant and claimant[0] == network.name:
            known.setdefault(claimant[1:], []).append(f"host port {claim}")
    return known


def collect(network: Network, alive: Alive, *, dry_run: bool = False) -> list[Collected]:
    """DEL every known attachment of `network` whose container is not alive.

    Each DEL holds its attachment's lock, as the runtime's DEL would: an ADD
    of that attachment still running when it was listed ends first.
    """
    collected = []
    for (container_id, ifname), evidence in sorted(known_attachments(network).items()):
        if alive(container_id, ifname):
            continue
        error = None
        if not dry_run:
            error = _detach_dead(network, container_id, ifname)
        collected.append(Collected(container_id, ifname, tuple(evidence), error))
    return collected


def _detach_dead(network: Network, container_id: str, ifname: str) -> str | None:
    path = record_path(network.state_dir, network.name, container_id, ifname)
    try:
        with records.attachment_locked(path):
            record = records.load(path)
            pod = (
                record.context
                if record is not None
                else PodContext(container_id, ifname, port_mappings=None, bandwidth=None)
            )
            netns = pod.netns if pod.netns and os.path.exists(pod.netns) else None
            detach(network, pod, record or Record(path, pod), netns)
    except NetcError as error:
        return str(error)
    return None
