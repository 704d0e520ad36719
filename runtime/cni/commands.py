"""The CNI commands: what the plugin does for ADD, DEL, CHECK, STATUS and GC.

Each command plans (`compiler.planner`) and has the executor carry the plan
out; nothing here decides which kernel objects exist.  Calls on one
attachment are serialised by its lock (`records.attachment_locked`); calls
on different attachments run side by side, and take the network's lock
only to change what its pods share (the executor's node phase), the IPAM
directory's to reserve or free an address, the host ports' to claim one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from compiler.errors import Code, NetcError
from compiler.planner.names import record_path
from compiler.planner.ops import State
from compiler.planner.plan import plan
from compiler.versions import version_key
from runtime import attachment_records as records
from runtime import executor
from runtime.attachment_records import Record
from runtime.cni.protocol import Call
from runtime.cni.request import (
    Request,
    pod_context,
    previous_addresses,
    refuse_previous_result,
)
from runtime.cni.result import build_result, result_drift
from runtime.detach import collect, detach
from runtime.files import locked
from runtime.host import Host
from runtime.ipam_store import IpamStore, Range


def _network_locked(request: Request) -> contextlib.AbstractContextManager[float]:
    """The network's lock: what its pods share is changed under it (and `netc apply` holds it)."""
    network = request.network
    return locked(
        os.path.join(network.state_dir, network.name, "lock"),
        logged_as=f"network {network.name}",
        kind="network",
    )


def _record_path(call: Call, request: Request) -> str:
    network = request.network
    return record_path(network.state_dir, network.name, call.container_id or "", call.ifname or "")


def _host(netns: str | None) -> Host:
    host = Host(netns)
    if netns is None:
        return host
    try:
        own = host.sandbox.is_host()
    except NetcError:
        host.close()
        raise
    if own:
        host.close()
        raise NetcError(
            f"CNI_NETNS {netns} is the node's own network namespace, not a pod's",
            Code.BAD_ENVIRONMENT,
        )
    return host


def add(call: Call, request: Request) -> dict[str, Any]:
    """Attach the pod; the result is the same when the ADD is repeated."""
    refuse_previous_result(request)
    path = _record_path(call, request)
    with records.attachment_locked(path):
        previous = records.load(path)
        pod = pod_context(call, request, previous)
        the_plan = plan(request.network, pod, "ADD")
        host = _host(call.netns)
        try:
            bound = dict(previous.bindings) if previous else {}
            run = executor.Run(
                host,
                the_plan,
                pod,
                Record(path, pod, bound),
                previous,
                shared_lock=lambda: _network_locked(request),
            )
            executor.apply(run)
            return build_result(request.network, host, pod, run.bindings, request.version)
        finally:
            host.close()


def delete(call: Call, request: Request, answer_first: bool = False) -> Callable[[], None] | None:
    """Detach the pod: best effort, repeatable, with or without its namespace.

    The runtime's `prevResult` is not read: the record and the names derived
    from the attachment say what to remove, whatever the cache holds.  With
    `answer_first`, what the DEL leaves for after its answer is returned, and
    the attachment's lock is held until that has run.
    """
    path = _record_path(call, request)
    with contextlib.ExitStack() as held:
        held.enter_context(records.attachment_locked(path))
        previous = records.load(path)
        pod = pod_context(call, request, previous)
        netns = call.netns if call.netns and os.path.exists(call.netns) else None
        host = held.enter_context(contextlib.closing(_host(netns)))
        record = previous or Record(path, pod)
        rest = detach(request.network, pod, record, netns, host, answer_first=answer_first)
        if rest is None:
            return None
        still_held = held.pop_all()

    def after_answer() -> None:
        with still_held:
            rest()

    return after_answer


def check(call: Call, request: Request) -> None:
    """Compare the attachment with its plan; any difference is an error saying what.

    The runtime's cached result (`prevResult`), when it sends one, must list
    the addresses the ADD reserved.
    """
    if version_key(request.version) < (0, 4, 0):
        raise NetcError(
            f"CHECK needs cniVersion 0.4.0 or later, not {request.version}",
            Code.INCOMPATIBLE_VERSION,
        )
    cached = previous_addresses(request)
    path = _record_path(call, request)
    with records.attachment_locked(path):
        previous = records.load(path)
        if previous is None:
            raise NetcError("no record of this attachment: was it added by netc?", Code.DRIFT)
        pod = pod_context(call, request, previous)
        the_plan = plan(request.network, pod, "CHECK")
        host = _host(call.netns)
        try:
            run = executor.Run(host, the_plan, pod, previous, previous)
            seen = executor.observe(run)
        finally:
            host.close()
    drift = [
        f"{op.summary}: {o.state}" + (f" ({o.detail})" if o.detail else "")
        for op, o in zip(the_plan.operations, seen, strict=True)
        if o.state != State.IN_PLACE
    ]
    listed = [] if cached is None else result_drift(request.network, previous.bindings, cached)
    if drift or listed:
        summary = (
            f"{len(drift)} of {len(seen)} operations differ"
            if drift
            else "the runtime's cached result differs from the ADD's"
        )
        raise NetcError(summary, Code.DRIFT, "\n".join(drift + listed))


def status(request: Request) -> None:
    """Ready when every address family still has a free address."""
    ipam = request.network.ipam
    if ipam is None:
        return
    store = IpamStore(ipam.data_dir, request.network.name)
    for family in ipam.families():
        ranges = [
            Range(s.cidr, s.range_start, s.range_end, s.gateway) for s in ipam.subnets_of(family)
        ]
        if store.free_count(ranges) <= 0:
            shown = ", ".join(str(s.cidr) for s in ipam.subnets_of(family))
            raise NetcError(f"no free IPv{family} address left in {shown}", Code.NOT_AVAILABLE)


def garbage_collect(request: Request) -> None:
    """Remove the state of every attachment not in `cni.dev/valid-attachments`.

    Without that key nothing is collected: netc does not guess which
    attachments are alive.
    """
    key = next(
        (k for k in ("cni.dev/valid-attachments", "cni.dev/attachments") if k in request.config),
        None,
    )
    if key is None:
        print("netc-cni: GC without cni.dev/valid-attachments: nothing collected", file=sys.stderr)
        return
    alive = _attachments(request.config[key], key)
    collected = collect(request.network, lambda c, i: (c, i) in alive)
    failures = [c.error for c in collected if c.error]
    if failures:
        raise NetcError("; ".join(failures), Code.OPERATION_FAILED)


def _attachments(value: object, key: str) -> set[tuple[str, str]]:
    """The (container ID, ifname) pairs a GC must keep; anything malformed collects nothing."""
    if not isinstance(value, list):
        raise NetcError(f"{key} is not a list", Code.BAD_CONFIG)
    alive = set()
    for entry in value:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("containerID"), str)
            and isinstance(entry.get("ifname"), str)
        ):
            raise NetcError(
                f"{key} holds {entry!r}, not an object with string containerID and ifname",
                Code.BAD_CONFIG,
                "nothing was collected",
            )
        alive.add((entry["containerID"], entry["ifname"]))
    return alive
