"""containerd's CRI runs the stock tuning and firewall plugins chained after netc-cni.

The network of the containerd tests, with `chain tuning { sysctl ... }` and
`chain firewall`, built by `netc build --target netc`: containerd's libcni
runs netc-cni, then tuning, then firewall, each getting the result before it
as `prevResult`, and on StopPodSandbox the DELs in reverse with the cached
result -- the firewall takes its rules out for the addresses that result
lists.  The daemon, so the plugins, run in the lab's node namespace: the
firewall's chains are made there and nowhere else.  The daemon has its own
/var/lib (tests/runtimes/containerd.py), where the test reads libcni's cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.kernel import chained
from tests.kernel.lab import Lab
from tests.runtimes import network
from tests.runtimes.conftest import containerd_on
from tests.runtimes.containerd import Containerd
from tests.runtimes.host import CgroupTree

pytestmark = [
    pytest.mark.runtimes,
    pytest.mark.root,
    pytest.mark.usefixtures("containerd_installed"),
]

HOST_PORT = 8091


@pytest.fixture
def daemon(lab: Lab) -> Iterator[Containerd]:
    """containerd in the node, the chained network in its conf_dir, /var/lib its own."""
    with containerd_on(
        lab, network.source(lab, chained.STATEMENTS), "localhost/netc-pause:chain"
    ) as engine:
        yield engine


def test_cri_pod_gets_the_chained_plugins_effects_and_stop_takes_them_out(lab, daemon):
    cri = daemon.cri
    assert cri is not None
    conflist = json.loads(next((lab.tmp / "net.d").glob("*.conflist")).read_text())
    assert [p["type"] for p in conflist["plugins"]] == ["netc-cni", "tuning", "firewall"]
    node_before = chained.sysctls(lab, lab.node)

    pod = cri.run_pod(
        "web",
        "team",
        host_port=HOST_PORT,
        container_port=80,
        annotations={},
        cgroup_parent=CgroupTree(lab.tag).parent,
    )
    address = cri.status(pod)[0].network.ip
    assert address.startswith(network.SUBNET_PREFIX)
    sandbox = cri.netns(pod)
    assert chained.sysctls(lab, sandbox.name) == chained.SYSCTLS
    assert chained.sysctls(lab, lab.node) == node_before
    assert len(chained.firewall_rules(lab, lab.node, address)) == 2
    cached = json.loads(daemon.cni_cache(network.NAME, pod).read_text())
    assert [ip["address"] for ip in cached["result"]["ips"]] == [f"{address}/24"]
    assert network.serves(lab, HOST_PORT), network.http_from_client(lab, HOST_PORT)

    cri.stop(pod)  # the DELs, then the namespace goes, and the sysctls set in it with it
    assert chained.firewall_rules(lab, lab.node, address) == []
    assert not daemon.cni_cache(network.NAME, pod).exists()
    assert network.leftovers(lab, pod) == {}
    assert not sandbox.exists()
    cri.remove(pod)  # DEL again, with no cached result
    assert chained.firewall_rules(lab, lab.node, address) == []
    assert network.leftovers(lab, pod) == {}
    assert cri.pods() == []
