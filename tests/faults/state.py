"""What a pod leaves on the node, and whether an attached pod works -- read from the kernel.

`leftovers` lists everything an attachment could leave, by kind; a clean
node gives empty lists.  Rules are read from every table of both families
(iptables-save with no table dumps them all), so a rule planted in a table
netc never writes is found too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compiler.planner.names import AttachmentNames
from runtime.files import TEMPORARY_PREFIX
from tests.kernel.lab import Lab, Pod

NETWORK = "labnet"
OWNED_LINKS = ("veth", "nifb")
IPAM_BOOKKEEPING = ("lock", "last_reserved_ip.", ".netc-boot")


def rules(lab: Lab) -> list[str]:
    """Every rule and chain of every table, IPv4 and IPv6, in the node."""
    lines = []
    for program in ("iptables-save", "ip6tables-save"):
        output = lab.run(lab.node, program).stdout
        lines += [
            f"{program[:-5]} {line}"
            for line in output.splitlines()
            if line and not line.startswith(("#", "COMMIT"))
        ]
    return lines


def links(lab: Lab, netns: str) -> list[str]:
    done = lab.run(netns, "ip", "-j", "link", "show", check=False)
    return [link["ifname"] for link in json.loads(done.stdout or "[]")]


def state_files(base: Path) -> list[Path]:
    """Every file below the state and data directories of the lab whose files are at `base`."""
    return sorted(
        p
        for root in (base / "state", base / "ipam")
        if root.exists()
        for p in root.rglob("*")
        if p.is_file()
    )


def leftovers(lab: Lab, pods: list[Pod], view: Path | None = None) -> dict[str, list[str]]:
    """What remains of `pods` (or of any attachment) on the node and in their namespaces.

    `view` is where the lab's directory is seen from, when the plugin had other
    mounts over it (/proc/PID/root/... of a process in that mount namespace).
    """
    base = view or lab.tmp
    chains = [AttachmentNames(NETWORK, pod.container_id, "eth0").dnat_chain for pod in pods]
    files = state_files(base)
    state = base / "state"
    found = {
        "links": [name for name in links(lab, lab.node) if name.startswith(OWNED_LINKS)],
        "rules": [
            line
            for line in rules(lab)
            if any(p.container_id in line for p in pods)
            or "NETC-DN-" in line
            or any(chain in line for chain in chains)
        ],
        "qdiscs": [
            f"{q['dev']} {q['kind']}"
            for q in json.loads(lab.run(lab.node, "tc", "-j", "qdisc", "show").stdout or "[]")
            if q["dev"].startswith(OWNED_LINKS)
        ],
        "reservations": [
            p.name
            for p in files
            if p.parent == base / "ipam" / NETWORK and not p.name.startswith(IPAM_BOOKKEEPING)
        ],
        "records": [p.name for p in files if p.suffix == ".json"],
        "attachment locks": [
            p.name for p in files if p.parent == state / NETWORK and p.suffix == ".lock"
        ],
        "claims": [p.name for p in files if p.parent == state / "hostports" and p.name != "lock"],
        "temporaries": [
            str(p.relative_to(base)) for p in files if p.name.startswith(TEMPORARY_PREFIX)
        ],
        "pod interfaces": [
            f"{pod.name}: {name}"
            for pod in pods
            if pod.name in lab.namespaces
            for name in links(lab, pod.name)
            if name != "lo"
        ],
    }
    return found


CLEAN = {
    kind: []
    for kind in (
        "links",
        "rules",
        "qdiscs",
        "reservations",
        "records",
        "attachment locks",
        "claims",
        "temporaries",
        "pod interfaces",
    )
}


def assert_clean(lab: Lab, pods: list[Pod], view: Path | None = None) -> None:
    found = leftovers(lab, pods, view)
    assert found == CLEAN, {kind: items for kind, items in found.items() if items}


def assert_attached(
    lab: Lab, pod: Pod, result: dict[str, Any], egress: bool = False, view: Path | None = None
) -> None:
    """One address per family, reserved once; the gateway answers; egress goes through its ifb."""
    families = [("6" if ":" in ip["address"] else "4") for ip in result["ips"]]
    assert sorted(families) == sorted(set(families)), result["ips"]
    owner = f"{pod.container_id}\r\neth0"
    held = [
        p.name
        for p in ((view or lab.tmp) / "ipam" / NETWORK).iterdir()
        if not p.name.startswith(IPAM_BOOKKEEPING) and p.read_bytes().decode() == owner
    ]
    assert sorted(held) == sorted(ip["address"].split("/")[0] for ip in result["ips"])
    for ip in result["ips"]:
        assert lab.ping(pod.name, ip["gateway"]), f"{pod.name} cannot reach {ip['gateway']}"
    if egress:
        names = AttachmentNames(NETWORK, pod.container_id, "eth0")
        filters = lab.run(
            lab.node, "tc", "filter", "show", "dev", names.host_veth, "ingress"
        ).stdout
        assert filters.count("mirred") == 1 and f"device {names.ifb})" in filters, filters
        qdiscs = lab.run(lab.node, "tc", "qdisc", "show", "dev", names.ifb).stdout
        assert "tbf" in qdiscs, qdiscs
