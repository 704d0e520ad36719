"""What a node holds for netc's networks, and what of it no longer adds up (`netc status`).

For each network: the attachments (from their records), the address
reservations, the host-port claims; and for the node, the kernel objects
that carry netc's derived names (host veths, ifbs, DNAT chains).  Each
piece is checked against the others, and every inconsistency becomes a
`Problem` saying what `netc gc` (or `netc apply`) would do about it:

    reservation without record   an address no attachment record explains
    record without namespace     the pod's network namespace is gone
    claim without record         a host port held for an attachment that has no record
    link without record          a veth on the network's bridge (or its ifb) with netc's
                                 name that no known attachment derives
    chain without record         a DNAT chain the network's dispatch chain jumps to that
                                 no known attachment derives
    node object differs          a node-scoped object (bridge, NAT) not as planned
    node object blocked          something netc does not own in the way of one (a device
                                 of the bridge's name that is no bridge)

Reading only: nothing here changes the node.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

from compiler.datatypes import field, frozen, mutable
from compiler.ir import Network, family_key
from compiler.planner.attach import node_operations
from compiler.planner.names import (
    AttachmentNames,
    NetworkNames,
    hostport_claims_path,
    owner_of,
)
from compiler.planner.ops import Plan, State
from runtime import attachment_records as records
from runtime import executor
from runtime.detach import known_attachments
from runtime.host import Host
from runtime.ipam_store import IpamStore
from runtime.iptables import program
from runtime.ops.hostports import claims_in, holder_of
from runtime.programs import ProgramFailed, run

OWNED_LINK = re.compile(r"(veth|nifb)[0-9a-f]{11}")
OWNED_CHAIN = re.compile(r"NETC-DN-[0-9a-f]{20}")


@frozen
class Attachment:
    """One pod's attachment, as its record tells it."""

    container_id: str
    ifname: str
    addresses: tuple[str, ...]
    ports: tuple[str, ...]
    rates: dict[str, int]
    netns: str | None
    since: float

    def to_json(self) -> dict[str, Any]:
        """The machine form."""
        return {
            "container_id": self.container_id,
            "ifname": self.ifname,
            "addresses": list(self.addresses),
            "ports": list(self.ports),
            "rates": self.rates,
            "netns": self.netns,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
        }


@frozen
class Problem:
    """Something that does not add up, who it belongs to, and what would fix it."""

    kind: str
    subject: str
    detail: str
    remedy: str
    owner: tuple[str, str] | None = None
    """(container ID, ifname) of the attachment it belongs to, when known."""

    def to_json(self) -> dict[str, Any]:
        """The machine form."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "remedy": self.remedy,
            "owner": list(self.owner) if self.owner else None,
        }


@mutable
class NetworkState:
    """One network on the node."""

    network: str
    attachments: list[Attachment] = field(default_factory=list)
    reservations: dict[str, tuple[str, str]] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The machine form."""
        return {
            "network": self.network,
            "attachments": [a.to_json() for a in self.attachments],
            "reservations": {a: list(o) for a, o in self.reservations.items()},
            "claims": self.claims,
            "problems": [p.to_json() for p in self.problems],
        }


def inspect(networks: Sequence[Network]) -> list[NetworkState]:
    """The state of each bridge network on this node (run inside the node's namespace)."""
    states = []
    for network in (n for n in networks if n.bridge is not None):
        state = _network_state(network)
        explained = {
            name for owner in known_attachments(network) for name in _owned_names(network, owner)
        }
        state.problems += _unexplained_objects(network, explained)
        states.append(state)
    return states


def _network_state(network: Network) -> NetworkState:
    state = NetworkState(network.name)
    directory = os.path.join(network.state_dir, network.name)
    for path in records.paths(directory):
        record = records.load(path)
        if record is not None:
            state.attachments.append(_attachment(record, path))
    recorded = {(a.container_id, a.ifname) for a in state.attachments}
    if network.ipam is not None:
        store = IpamStore(network.ipam.data_dir, network.name)
        state.reservations = store.holders()
    state.claims = _claims(network)
    state.problems = [
        *_unexplained_reservations(state, recorded),
        *_gone_namespaces(state),
        *_unexplained_claims(network, state, recorded),
        *_node_drift(network),
    ]
    return state


def _attachment(record: records.Record, path: str) -> Attachment:
    context = record.context
    addresses = tuple(v for k, v in sorted(record.bindings.items()) if k.endswith(".cidr"))
    ports = tuple(str(m) for m in context.port_mappings or ())
    bandwidth = context.bandwidth
    rates = {d: r for d in ("ingress", "egress") if bandwidth and (r := bandwidth.rate(d))}
    return Attachment(
        context.container_id,
        context.ifname,
        addresses,
        ports,
        rates,
        context.netns,
        os.stat(path).st_mtime,
    )


def _claims(network: Network) -> dict[str, str]:
    """The network's host-port claims on the node, each with its holder."""
    directory = hostport_claims_path(network.state_dir)
    found = {}
    for claim in claims_in(directory):
        holder = holder_of(directory, claim) or ""
        if (owner_of(holder) or ("",))[0] == network.name:
            found[str(claim)] = holder
    return found


def _unexplained_reservations(state: NetworkState, recorded: set[tuple[str, str]]) -> list[Problem]:
    return [
        Problem(
            "reservation without record",
            f"{state.network} {address}",
            f"held by {owner[0]}/{owner[1]}, which has no attachment record",
            "netc gc runs its DEL once the container is gone",
            owner,
        )
        for address, owner in state.reservations.items()
        if owner not in recorded
    ]


def _gone_namespaces(state: NetworkState) -> list[Problem]:
    return [
        Problem(
            "record without namespace",
            f"{state.network} {a.container_id}/{a.ifname}",
            f"its network namespace {a.netns} is gone",
            "netc gc runs its DEL once the container is gone",
            (a.container_id, a.ifname),
        )
        for a in state.attachments
        if a.netns and not os.path.exists(a.netns)
    ]


def _unexplained_claims(
    network: Network, state: NetworkState, recorded: set[tuple[str, str]]
) -> list[Problem]:
    found = []
    for claim, owner in state.claims.items():
        _, container_id, ifname = owner_of(owner) or ("", "", "")
        if (container_id, ifname) not in recorded:
            found.append(
                Problem(
                    "claim without record",
                    f"{network.name} {claim}",
                    f"claimed by {container_id}/{ifname}, which has no record",
                    "netc gc removes it once the container is gone",
                    (container_id, ifname),
                )
            )
    return found


def _node_drift(network: Network) -> list[Problem]:
    """Node-scoped objects of the network that are not as planned."""
    plan = Plan("CHECK", None, tuple(node_operations(network)))
    host = Host(None)
    try:
        seen = executor.observe(executor.Run(host, plan))
    finally:
        host.close()
    return [
        Problem(
            "node object blocked",
            op.summary,
            o.detail or str(o.state),
            f"netc apply refuses until it is gone ({op.span})",
        )
        if o.state == State.BLOCKED
        else Problem(
            "node object differs",
            op.summary,
            o.detail or str(o.state),
            f"netc apply (or the next pod's ADD) sets it up ({op.span})",
        )
        for op, o in zip(plan.operations, seen, strict=True)
        if o.state in (State.CREATE, State.DIFFERENT, State.BLOCKED)
    ]


def _owned_names(network: Network, owner: tuple[str, str]) -> list[str]:
    """The kernel names of an attachment the node knows of (by record, address or claim)."""
    names = AttachmentNames(network.name, *owner)
    return [names.host_veth, names.ifb, names.dnat_chain]


def _unexplained_objects(network: Network, explained: set[str]) -> list[Problem]:
    """Kernel objects of the network with netc's derived names that nothing known derives.

    Only what is evidently the network's: veths on its bridge, the ifbs in
    their link groups, DNAT chains its dispatch chains jump to.  A name alone
    says nothing of the network (it is a hash): the pods of a network that is
    not inspected here are never reported.
    """
    assert network.bridge is not None
    host = Host(None)
    try:
        links = host.node.links()
    finally:
        host.close()
    bridge = next((link.index for link in links if link.name == network.bridge.name), None)
    veths = [
        link
        for link in links
        if link.master == bridge and OWNED_LINK.fullmatch(link.name) and link.name not in explained
    ]
    groups = {link.group for link in veths if link.group}
    ifbs = [
        link
        for link in links
        if link.kind == "ifb"
        and link.group in groups
        and OWNED_LINK.fullmatch(link.name)
        and link.name not in explained
    ]
    remedy = (
        "delete it by hand once no pod uses it: netc gc collects the attachments a "
        "record, address or host port names, and this one has none"
    )
    found = [
        Problem(
            "link without record",
            f"{network.name} {link.name}",
            f"a {link.kind} with netc's name on {network.bridge.name} that no "
            "attachment of the network derives",
            remedy,
        )
        for link in [*veths, *ifbs]
    ]
    for family in (4, 6):
        found += [
            Problem(
                "chain without record",
                f"{network.name} {family_key(family)} nat/{chain}",
                f"jumped to from {dispatch}, but no attachment of the network derives it",
                remedy,
            )
            for dispatch, chain in _dnat_chains(network, family)
            if chain not in explained
        ]
    return found


def _dnat_chains(network: Network, family: int) -> list[tuple[str, str]]:
    """(dispatch chain, DNAT chain) of each jump from the network's dispatch chain."""
    dispatch = NetworkNames(network.name).hostport_chain
    try:
        listing = run(program(family), "-w", "10", "-t", "nat", "-S", dispatch)
    except (ProgramFailed, OSError):
        return []
    targets = {
        words[-1]
        for words in (line.split() for line in listing.decode().splitlines())
        if words[:2] == ["-A", dispatch] and OWNED_CHAIN.fullmatch(words[-1])
    }
    return [(dispatch, chain) for chain in sorted(targets)]
