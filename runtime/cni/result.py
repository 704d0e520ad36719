"""The ADD result, in the shape of the CNI version the configuration asked for.

Interfaces: the bridge and the host veth (no `sandbox`), then the pod's
interface with its MAC and `sandbox` path -- podman refuses a result whose
sandbox interface has no valid MAC, and containerd takes the pod IP from the
interface called eth0.  0.3.x and 0.4.0 results carry `ips[].version`; 1.x
results must not.  Plugins chained after netc-cni get this result as their
`prevResult`; the runtime caches the chain's final one and gives it back on
CHECK, where it must still list what the ADD reserved (`result_drift`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from compiler.ir import IPInterface, Network, family_key
from compiler.planner.context import PodContext
from compiler.planner.names import AttachmentNames
from compiler.planner.ops import Where
from compiler.versions import version_key
from runtime.host import Host


def build_result(
    network: Network, host: Host, pod: PodContext, bindings: Mapping[str, str], version: str
) -> dict[str, Any]:
    """The success result of an ADD."""
    assert network.bridge is not None and network.ipam is not None
    names = AttachmentNames(network.name, pod.container_id, pod.ifname)
    interfaces = [
        _interface(host, Where.NODE, network.bridge.name),
        _interface(host, Where.NODE, names.host_veth),
        {**_interface(host, Where.SANDBOX, pod.ifname), "sandbox": pod.netns},
    ]
    result: dict[str, Any] = {
        "cniVersion": version,
        "interfaces": interfaces,
        "ips": _ips(network, bindings, version),
    }
    if network.ipam.routes:
        result["routes"] = [
            {"dst": str(r.dst), **({"gw": str(r.via)} if r.via else {})}
            for r in network.ipam.routes
        ]
    if network.ipam.dns is not None and network.ipam.dns.cni():
        result["dns"] = network.ipam.dns.cni()
    return result


def _interface(host: Host, where: Where, name: str) -> dict[str, Any]:
    link = host.identified(where, name)
    entry: dict[str, Any] = {"name": name}
    if link is not None:
        entry["mac"] = link.mac
    return entry


def _ips(network: Network, bindings: Mapping[str, str], version: str) -> list[dict[str, Any]]:
    legacy = version_key(version) < (1, 0, 0)
    ips = []
    assert network.ipam is not None
    for family in network.ipam.families():
        key = family_key(family)
        if f"{key}.cidr" not in bindings:
            continue
        entry: dict[str, Any] = {
            "address": bindings[f"{key}.cidr"],
            "gateway": bindings[f"{key}.gateway"],
            "interface": 2,
        }
        if legacy:
            entry["version"] = str(family)
        ips.append(entry)
    return ips


def result_drift(
    network: Network, bindings: Mapping[str, str], cached: tuple[IPInterface, ...]
) -> list[str]:
    """What a CHECK's `prevResult` says of the pod's addresses that the ADD did not reserve.

    Only addresses of the network's subnets are netc's: a chained plugin may add others.
    """
    assert network.ipam is not None
    held = {
        ipaddress.ip_interface(bindings[f"{family_key(f)}.cidr"])
        for f in network.ipam.families()
        if f"{family_key(f)}.cidr" in bindings
    }
    subnets = [s.cidr for s in network.ipam.subnets]
    listed = {a for a in cached if any(a.version == s.version and a.ip in s for s in subnets)}
    return [
        f"the runtime's cached result lacks {a}, which the ADD reserved"
        for a in sorted(held - listed, key=str)
    ] + [
        f"the runtime's cached result lists {a}, which this attachment does not hold"
        for a in sorted(listed - held, key=str)
    ]
