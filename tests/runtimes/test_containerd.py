"""containerd 1.6 runs a pod through its CRI API on a netc network.

The pod is made as the kubelet would make it -- RunPodSandbox with a port
mapping and the kubernetes.io bandwidth annotations -- through the generated
CRI stubs of PyPI's container-runtime-interface-api.  containerd turns the
annotations into a `bandwidth` runtimeConfig in PascalCase with a burst of
4294967295 bits; netc must read it and bound the burst.  Its sandbox image
serves HTTP, so the pod answers on its host port without a container.
containerd runs DEL twice, on StopPodSandbox and on RemovePodSandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler import shaping
from tests.kernel.lab import Lab
from tests.runtimes import network
from tests.runtimes.conftest import containerd_on, netc, require
from tests.runtimes.containerd import Containerd, Cri
from tests.runtimes.host import CgroupTree, processes_naming

pytestmark = [pytest.mark.runtimes, pytest.mark.root]

SANDBOX_IMAGE = "localhost/netc-pause:latest"
HOST_PORT = 8090
INGRESS, EGRESS = 8_000_000, 4_000_000
ANNOTATIONS = {"kubernetes.io/ingress-bandwidth": "8M", "kubernetes.io/egress-bandwidth": "4M"}


@pytest.fixture(autouse=True)
def _needs_containerd() -> None:
    require("containerd")


@pytest.fixture
def daemon(lab: Lab) -> Iterator[Containerd]:
    """A running containerd in the node, the netc network in its conf_dir, the image in k8s.io."""
    with containerd_on(lab, network.source(lab), SANDBOX_IMAGE) as engine:
        yield engine


def _processes(daemon: Containerd) -> set[str]:
    """The programs running on behalf of this daemon (it, and its shims while pods live)."""
    running = processes_naming(str(daemon.work)).values()
    return {Path(command.split()[0]).name for command in running}


def _pod(lab: Lab, cri: Cri) -> str:
    return cri.run_pod(
        "web",
        "team",
        host_port=HOST_PORT,
        container_port=80,
        annotations=ANNOTATIONS,
        cgroup_parent=CgroupTree(lab.tag).parent,
    )


def _shaped(lab: Lab, device: str, rate_bits: int) -> None:
    """A TBF of `rate_bits` on `device`, its bucket netc's bound, not containerd's 512 MiB."""
    found = network.tbf(lab, lab.node, device)
    assert found is not None, f"no tbf on {device}"
    assert found["rate"] * 8 == rate_bits
    bounded = shaping.burst_cap_bytes(rate_bits)
    assert abs(found["burst"] - bounded) <= bounded * 0.02, found


def test_cri_pod_gets_its_host_port_and_bandwidth_and_two_dels_leave_nothing(lab, daemon):
    cri = daemon.cri
    assert cri is not None
    pod = _pod(lab, cri)
    status, info = cri.status(pod)
    assert status.network.ip.startswith(network.SUBNET_PREFIX)
    seen = info["cniResult"]["Interfaces"]["eth0"]  # netc's result, as containerd parsed it
    assert seen["IPConfigs"] == [{"IP": status.network.ip, "Gateway": network.GATEWAY}]
    assert seen["Mac"]
    sandbox = cri.netns(pod)
    assert sandbox.exists()

    assert network.serves(lab, HOST_PORT), network.http_from_client(lab, HOST_PORT)
    names = network.names(pod)
    _shaped(lab, names.host_veth, INGRESS)
    _shaped(lab, names.ifb, EGRESS)

    cri.stop(pod)
    assert network.leftovers(lab, pod) == {}
    cri.remove(pod)
    assert network.leftovers(lab, pod) == {}
    assert cri.pods() == []
    assert lab.wait_for(lambda: _processes(daemon) == {"containerd"}), _processes(daemon)
    assert not sandbox.exists()


def test_gc_asks_containerd_which_pods_live_and_collects_only_the_dead(lab, daemon):
    """`netc gc --cri-socket` keeps the CRI pod and DELs an attachment leaked
    by a sandbox containerd no longer knows (made here by calling the plugin directly)."""
    cri = daemon.cri
    assert cri is not None
    living = _pod(lab, cri)
    source = lab.tmp / "gc.netdsl"
    source.write_text(network.source(lab))
    leaked = lab.pod("leaked")
    lab.add(lab.tmp / "net.d" / f"10-{network.NAME}.conflist", leaked, ports=("8099:80",))
    args = ["gc", str(source), "--node-netns", lab.node, "--cri-socket", str(daemon.socket)]
    dry = netc(*args)
    assert f"would collect {leaked.container_id}/eth0" in dry
    assert living not in dry
    done = netc(*args, "--apply")
    assert f"collected {leaked.container_id}/eth0" in done, done
    gone, kept = network.names(leaked.container_id), network.names(living)
    links = lab.run(lab.node, "ip", "-o", "link").stdout
    assert gone.host_veth not in links and kept.host_veth in links
    holders = {
        p.read_text().split()[0]
        for p in (network.data_dir(lab) / network.NAME).glob(network.SUBNET_PREFIX + "*")
    }
    assert holders == {living}
    assert network.serves(lab, HOST_PORT)
    cri.stop(living)
    cri.remove(living)


TIMED_PLUGIN = """#!/bin/sh
case "$CNI_COMMAND" in ADD|DEL) echo "$0 $CNI_COMMAND start $(date +%s%N)" >> {log} ;; esac
if [ "$CNI_COMMAND" = ADD ]; then sleep {pause}; fi
{plugin} "$@"
status=$?
case "$CNI_COMMAND" in ADD|DEL) echo "$0 $CNI_COMMAND end $(date +%s%N)" >> {log} ;; esac
exit $status
"""
"""A plugin, run by this script in its place, logging when each ADD and DEL starts and ends."""


def _timed(plugin: Path, log: Path, pause: float = 0.0) -> None:
    """Have `plugin` (in containerd's bin_dir) log its calls' start and end to `log`."""
    real = plugin.with_name(f"{plugin.name}.timed")
    plugin.rename(real)
    plugin.write_text(TIMED_PLUGIN.format(log=log, pause=pause, plugin=real.resolve()))
    plugin.chmod(0o755)


def test_containerd_adds_the_loopback_beside_the_pod_network_and_deletes_it_first(lab, daemon):
    """How bench/implementations.py calls a sandbox's lists, checked against containerd 1.6:
    its go-cni attaches the loopback and the pod network at once, and removes them one by
    one, loopback first.  The loopback's ADD waits 0.5 s: run one after the other, the two
    ADDs could not overlap."""
    cri = daemon.cri
    assert cri is not None
    bin_dir, log = lab.tmp / "cni-bin", lab.tmp / "calls.log"
    _timed(bin_dir / "loopback", log, pause=0.5)
    _timed(bin_dir / "netc-cni", log)
    pod = _pod(lab, cri)
    cri.stop(pod)
    calls: dict[tuple[str, str], dict[str, int]] = {}
    for line in log.read_text().splitlines():
        path, command, event, when = line.split()
        calls.setdefault((Path(path).name, command), {}).setdefault(event, int(when))
    adds = [calls["loopback", "ADD"], calls["netc-cni", "ADD"]]
    assert max(add["start"] for add in adds) < min(add["end"] for add in adds), calls
    assert calls["loopback", "DEL"]["end"] < calls["netc-cni", "DEL"]["start"], calls
    cri.remove(pod)
    assert network.leftovers(lab, pod) == {}
