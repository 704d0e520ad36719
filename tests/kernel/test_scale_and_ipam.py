"""Many pods, concurrent ADDs, and host-local's on-disk layout."""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runtime.driver import PluginFailed
from runtime.files import locked_temporary
from runtime.ipam_store import BOOT_MARKER
from tests.kernel import networks
from tests.kernel.test_lifecycle import NOTHING, _leftovers

PODS = 50


def test_fifty_pods_come_and_go_without_duplicates_or_leftovers(lab):
    conflist = lab.network(networks.FULL)
    before = lab.snapshot()
    assert not any(link[0].startswith("veth") for link in before["links"])
    pods = [lab.pod(f"s{i}") for i in range(PODS)]
    results = [
        lab.add(conflist, pod, ports=(f"{30000 + i}:80",), bandwidth="ingress=20M,egress=20M")
        for i, pod in enumerate(pods)
    ]
    addresses = [r["ips"][0]["address"] for r in results]
    assert len(set(addresses)) == PODS
    assert len(list((lab.tmp / "ipam" / "labnet").glob("10.*"))) == PODS
    assert lab.ping(pods[0].name, addresses[-1].split("/")[0])
    for pod in pods:
        lab.delete(conflist, pod)
    assert _leftovers(lab, pods[0], results[0]) == NOTHING
    after = lab.snapshot()
    assert [link for link in after["links"] if link[0].startswith(("veth", "nifb"))] == []
    assert not any("NETC-DN-" in line for line in after["nat"])
    assert {q[0] for q in after["qdiscs"]} <= {q[0] for q in before["qdiscs"]} | {"nc-br0"}


def test_concurrent_adds_never_hand_out_an_address_twice(lab):
    conflist = lab.network(networks.BRIDGE)
    pods = [lab.pod(f"c{i}") for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda pod: lab.add(conflist, pod), pods))
    addresses = {r["ips"][0]["address"] for r in results}
    assert len(addresses) == len(pods)


def _host_local(lab, command: str, container_id: str) -> subprocess.CompletedProcess:
    config = {
        "cniVersion": "1.0.0",
        "name": "labnet",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.77.0.0/24"}]],
            "dataDir": str(lab.tmp / "ipam"),
        },
    }
    environment = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": "/run/netns/none",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
    }
    return subprocess.run(
        ["/usr/lib/cni/host-local"],
        input=json.dumps(config).encode(),
        env=environment,
        capture_output=True,
        check=True,
    )


def test_addresses_reserved_by_host_local_are_never_handed_out_again(lab):
    taken = {
        json.loads(_host_local(lab, "ADD", f"hl{i}").stdout)["ips"][0]["address"] for i in range(3)
    }
    conflist = lab.network(networks.BRIDGE)
    result = lab.add(conflist, lab.pod("after"))
    assert result["ips"][0]["address"] not in taken
    files = {p.name for p in (lab.tmp / "ipam" / "labnet").glob("10.*")}
    assert len(files) == 4


def test_host_local_releases_what_netc_reserved(lab):
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("p")
    lab.add(conflist, pod)
    (reservation,) = (lab.tmp / "ipam" / "labnet").glob("10.*")
    assert reservation.read_bytes() == f"{pod.container_id}\r\neth0".encode()
    _host_local(lab, "DEL", pod.container_id)
    assert not reservation.exists()


def test_a_crashed_writer_leaves_no_empty_reservation(lab):
    directory = lab.tmp / "ipam" / "labnet"
    directory.mkdir(parents=True)
    # What a crash in the middle of writing the boot marker leaves; a reservation's own
    # staging file is the attachment's (tests/state/test_ipam_store.py).
    Path(locked_temporary(str(directory / BOOT_MARKER))).write_bytes(b"")
    conflist = lab.network(networks.BRIDGE)
    lab.add(conflist, lab.pod("p"))
    names = sorted(p.name for p in directory.iterdir())
    assert not any(name.startswith(".netc-tmp") for name in names)
    assert all((directory / name).stat().st_size > 0 for name in names if name != "lock")


def test_a_requested_address_is_given_once_and_kept_on_a_repeated_add(lab):
    conflist = lab.network(networks.BRIDGE)
    first, second = lab.pod("a"), lab.pod("b")
    asked = "IgnoreUnknown=1;IP=10.77.0.50"
    assert lab.add(conflist, first, args=asked)["ips"][0]["address"] == "10.77.0.50/24"
    assert lab.add(conflist, first, args=asked)["ips"][0]["address"] == "10.77.0.50/24"
    with pytest.raises(PluginFailed) as failure:
        lab.add(conflist, second, args=asked)
    assert failure.value.error["code"] == 104
    lab.delete(conflist, first)
    assert lab.add(conflist, second, args=asked)["ips"][0]["address"] == "10.77.0.50/24"


def test_after_a_reboot_the_first_add_reclaims_the_dead_pods_addresses(lab):
    """The reboot leak: records lived on tmpfs, reservations on disk.

    A boot is simulated in the lab's own directories: the state directory
    cleared (tmpfs), the reservations dated before the boot, and the boot
    marker naming another boot.
    """
    conflist = lab.network(networks.BRIDGE)
    before_boot = [lab.pod(f"old{i}") for i in range(3)]
    for pod in before_boot:
        lab.add(conflist, pod)
        lab.remove_netns(pod.name)
    reservations = lab.tmp / "ipam" / "labnet"
    for record in (lab.tmp / "state" / "labnet").glob("*.json"):
        record.unlink()
    for reservation in reservations.glob("10.*"):
        os.utime(reservation, (1_000_000_000, 1_000_000_000))
    (reservations / ".netc-boot").write_text("an-earlier-boot\n")
    survivor = lab.pod("new")
    lab.add(conflist, survivor)
    holders = {p.read_text().split()[0] for p in reservations.glob("10.*")}
    assert holders == {survivor.container_id}
