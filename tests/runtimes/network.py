"""The netc network the runtime tests attach containers to, and what an attachment leaves.

Both runtimes get the same network: a bridge with masquerade, host ports and
bandwidth, its state and IPAM directories inside the test's directory.  What
netc owns per attachment is found by the names it derives from (network,
container ID, ifname) -- the same derivation the plugin uses -- so the test
asks about *this* container's objects, not about whatever is on the node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compiler.planner.names import AttachmentNames, record_path
from tests.kernel.lab import NODE_IP, Lab, Namespaces

NAME = "rtnet"
SUBNET_PREFIX = "10.79.0."
GATEWAY = "10.79.0.1"
SOURCE = """
network rtnet {
    state-dir "{state}"
    bridge nc-rt0 {
        gateway
        masquerade
        hairpin
    }
    ipam {
        subnet 10.79.0.0/24
        route 0.0.0.0/0
        data-dir "{data}"
    }
    hostport
    bandwidth
{chain}}
"""


def source(lab: Lab, chain: str = "") -> str:
    """The network's `.netdsl` text with its directories inside the lab's; `chain` adds
    statements (`chain TYPE { ... }` lines) at the end of its block."""
    return (
        SOURCE.replace("{state}", str(state_dir(lab)))
        .replace("{data}", str(data_dir(lab)))
        .replace("{chain}", chain)
    )


def state_dir(lab: Lab) -> Path:
    """netc's state directory (records, host port claims, lock) for this test."""
    return lab.tmp / "state"


def data_dir(lab: Lab) -> Path:
    """netc's IPAM directory (host-local layout) for this test."""
    return lab.tmp / "ipam"


def page(lab: Lab) -> str:
    """What the test's busybox httpd serves: unique, so no other server can pass for it."""
    return f"hello from netc {lab.tag}\n"


def http_from_client(lab: Lab, host_port: int) -> str:
    """What the client namespace gets from a node's host port (or curl's complaint)."""
    done = lab.run(
        lab.client, "curl", "-sS", "--max-time", "5", f"http://{NODE_IP}:{host_port}/", check=False
    )
    return done.stdout if done.returncode == 0 else f"curl failed: {done.stderr.strip()}"


def serves(lab: Lab, host_port: int) -> bool:
    """Whether the page comes through the host port within a few seconds."""
    return lab.wait_for(lambda: http_from_client(lab, host_port) == page(lab))


def names(container_id: str) -> AttachmentNames:
    """The names netc gives the objects of a container's eth0 attachment."""
    return AttachmentNames(NAME, container_id, "eth0")


def _links(lab: Lab) -> list[dict[str, Any]]:
    return json.loads(lab.run(lab.node, "ip", "-d", "-j", "link").stdout)


def tbf(lab: Namespaces, node: str, device: str) -> dict[str, int] | None:
    """The root TBF of a device in a node namespace as tc reports it (rate in bytes/s,
    burst in bytes)."""
    shown = json.loads(lab.run(node, "tc", "-j", "qdisc", "show", "dev", device).stdout)
    roots = [q["options"] for q in shown if q["kind"] == "tbf" and q.get("root")]
    return roots[0] if roots else None


def leftovers(lab: Lab, container_id: str) -> dict[str, Any]:
    """What of the container's attachment is still on the node (empty when nothing)."""
    own = names(container_id)
    record = Path(record_path(str(state_dir(lab)), NAME, own.container_id, own.ifname))
    kinds = {k["ifname"]: k.get("linkinfo", {}).get("info_kind") for k in _links(lab)}
    found = {
        "veth/ifb": sorted(
            n for n, kind in kinds.items() if kind in ("veth", "ifb") and n != "eth0"
        ),
        "NETC-DN chain": own.dnat_chain in lab.run(lab.node, "iptables-save", "-t", "nat").stdout,
        "reservations": sorted(p.name for p in (data_dir(lab) / NAME).glob(SUBNET_PREFIX + "*")),
        "record": record.exists(),
        "host port claims": sorted(p.name for p in (state_dir(lab) / "hostports").glob("*:*")),
    }
    return {what: value for what, value in found.items() if value}
