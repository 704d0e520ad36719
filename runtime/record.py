"""Attachment records: what an ADD was asked for and what it reserved.

The record is the first thing an ADD writes and the last thing a DEL
removes.  A DEL that comes without runtimeConfig (or a GC) reads the port
mappings and bandwidth from it, and the addresses, so it removes exactly
what the ADD created without walking every reservation file.  Records live
under the network's state directory, /run/netc by default: tmpfs, cleared at
boot like the kernel state they describe.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any

from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from runtime.files import read_text, remove, write_atomically

FORMAT = 1


@dataclass(slots=True)
class Record:
    """The context of an attachment and the values its ADD bound."""

    path: str
    context: PodContext
    bindings: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        """Write the record atomically."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        document = {"format": FORMAT, "context": _context_json(self.context),
                    "bindings": self.bindings}
        write_atomically(self.path, json.dumps(document, sort_keys=True).encode())

    def delete(self) -> bool:
        """Remove the record; False when it was already gone."""
        return remove(self.path)


def load(path: str) -> Record | None:
    """The record at `path`, or None when there is none (or it is unreadable)."""
    text = read_text(path)
    if text is None:
        return None
    try:
        document = json.loads(text)
        return Record(path, _context(document["context"]), dict(document.get("bindings", {})))
    except (ValueError, KeyError, TypeError):
        return None


def paths(directory: str) -> list[str]:
    """The record files of a network's state directory."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.endswith(".json"))


def _context_json(context: PodContext) -> dict[str, Any]:
    mappings = None if context.port_mappings is None else [
        {"host_port": m.host_port, "container_port": m.container_port,
         "protocol": m.protocol, "host_ip": str(m.host_ip) if m.host_ip else None}
        for m in context.port_mappings]
    bandwidth = None if context.bandwidth is None else {
        "ingress_rate": context.bandwidth.ingress_rate,
        "ingress_burst": context.bandwidth.ingress_burst,
        "egress_rate": context.bandwidth.egress_rate,
        "egress_burst": context.bandwidth.egress_burst}
    return {"container_id": context.container_id, "ifname": context.ifname,
            "netns": context.netns, "namespace": context.namespace,
            "pod_name": context.pod_name, "port_mappings": mappings, "bandwidth": bandwidth,
            "requested_ips": [str(ip) for ip in context.requested_ips]}


def _context(data: dict[str, Any]) -> PodContext:
    mappings = data.get("port_mappings")
    bandwidth = data.get("bandwidth")
    return PodContext(
        container_id=data["container_id"], ifname=data["ifname"], netns=data.get("netns"),
        namespace=data.get("namespace"), pod_name=data.get("pod_name"),
        port_mappings=None if mappings is None else tuple(
            PortMapping(m["host_port"], m["container_port"], m["protocol"],
                        ipaddress.ip_address(m["host_ip"]) if m.get("host_ip") else None)
            for m in mappings),
        bandwidth=None if bandwidth is None else BandwidthRequest(**bandwidth),
        requested_ips=tuple(ipaddress.ip_address(a) for a in data.get("requested_ips", ())))
