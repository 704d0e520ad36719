"""Address reservation: one address per family, bound to `{ipv4.*}` / `{ipv6.*}`.

The reservation binds `ip`, `cidr` (ip/prefix) and `gateway`, which later
operations (the pod's address, its routes, DNAT rules) and the CNI result
use.  An attachment that already holds an address -- a repeated ADD, or a
CHECK -- gets the same one.  The address about to be taken is written to
the record first (`pending`), so an ADD killed between the reservation and
the record's update is repeated with the same address, not a second one.
"""

from __future__ import annotations

import os

from compiler.planner.names import record_path
from compiler.planner.ops import Observation, Operation
from compiler.planner.params import IpamAddressParams
from runtime.ipam_store import IpamStore, Range
from runtime.ops.base import IN_PLACE_NOW, Handler, Run, missing


def _store(op: Operation[IpamAddressParams]) -> IpamStore:
    """The network's reservations; an attachment is recorded if its record file exists."""
    network, state_dir = op.params.network, op.params.state_dir

    def recorded(container_id: str, ifname: str) -> bool:
        return os.path.exists(record_path(state_dir, network, container_id, ifname))

    return IpamStore(op.params.data_dir, network, recorded)


def _held(op: Operation[IpamAddressParams], run: Run) -> str | None:
    """The address the record says this attachment holds, or was about to take."""
    key = op.params.binds
    return run.bindings.get(f"{key}.ip") or run.bindings.get(f"{key}.pending")


class IpamAddressHandler(Handler[IpamAddressParams]):
    """host-local-compatible reservation of one address of a range set."""

    params = IpamAddressParams

    def ensure(self, op: Operation[IpamAddressParams], run: Run) -> bool:
        ranges = [Range.from_plan(r) for r in op.params.ranges]

        pod, record = run.attachment

        def announce(address: str) -> None:
            run.bind(op.params.binds, pending=address)
            record.save()

        held = _held(op, run)
        lease = _store(op).reserve(
            op.params.range_set,
            ranges,
            pod.container_id,
            pod.ifname,
            held=held,
            requested=op.params.requested,
            announce=announce,
        )
        run.bind(
            op.params.binds,
            ip=lease.address,
            cidr=f"{lease.address}/{lease.prefix}",
            gateway=lease.gateway,
        )
        record.bindings.pop(f"{op.params.binds}.pending", None)
        record.save()
        return lease.address != held

    def remove(self, op: Operation[IpamAddressParams], run: Run) -> None:
        held = _held(op, run)
        pod, _ = run.attachment
        _store(op).release(pod.container_id, pod.ifname, [held] if held else [])

    def observe(self, op: Operation[IpamAddressParams], run: Run) -> Observation:
        held = _held(op, run)
        pod, _ = run.attachment
        if held and _store(op).holds(held, pod.container_id, pod.ifname):
            return IN_PLACE_NOW
        return missing("no reservation for this attachment")


HANDLERS = (IpamAddressHandler(),)
