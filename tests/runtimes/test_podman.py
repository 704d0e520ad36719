"""podman 4.3 with its CNI backend runs a container on a netc network.

podman runs in the lab's node namespace through `nsenter --net` -- the
simplest approach that works here:

* `ip netns exec` is unusable: it remounts /sys, the cgroup mounts vanish
  and runc fails with "no cgroup mount found in mountinfo";
* no private mount namespace is made.  Its only purpose would be a sysfs
  whose /sys/class/net lists the node's links instead of the root
  namespace's, and nothing on this path reads /sys/class/net: netc-cni
  uses netlink and /proc/sys (both per network namespace), podman's CNI
  code uses netlink.  Without one, podman's mounts (overlay, shm, the
  /run/netns/netns-* of each container) stay visible to the next podman
  call and to this test's cleanup, which unmounts whatever is left below
  its directory.

The container is a busybox httpd from an image built here (no registry).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.lab import Lab
from tests.runtimes import network
from tests.runtimes.conftest import REFERENCE_PLUGINS, build, require
from tests.runtimes.host import CgroupTree, processes_naming
from tests.runtimes.images import docker_archive
from tests.runtimes.podman import Podman

pytestmark = [pytest.mark.runtimes, pytest.mark.root]

IMAGE = "localhost/netc-busybox:latest"
HOST_PORT = 8080


@pytest.fixture(autouse=True)
def _needs_podman() -> None:
    require("podman")


@pytest.fixture
def podman(lab: Lab, plugin_dir: Path) -> Iterator[Podman]:
    """A podman with the netc network in its config dir and the busybox image loaded."""
    conflist = build(network.source(lab), lab.tmp / "net.d")
    engine = Podman(
        lab.node, conflist.parent, [str(plugin_dir), str(REFERENCE_PLUGINS)], CgroupTree(lab.tag)
    )
    try:
        image = docker_archive(lab.tmp / "image.tar", IMAGE, network.page(lab))
        engine("load", "-q", "-i", str(image))
        yield engine
    finally:
        engine.close()
        assert not processes_naming(str(engine.work)), "conmon or podman left running"


def _web(podman: Podman) -> str:
    return podman.run("web", IMAGE, "--network", network.NAME, "-p", f"{HOST_PORT}:80")


def test_podman_container_serves_on_its_host_port_and_rm_leaves_nothing(lab, podman):
    container = _web(podman)
    settings = podman.inspect(container)["NetworkSettings"]
    sandbox = Path(settings["SandboxKey"])
    seen = settings["Networks"][network.NAME]  # netc's result, as podman parsed it
    assert seen["IPAddress"].startswith(network.SUBNET_PREFIX)
    assert seen["Gateway"] == network.GATEWAY and seen["MacAddress"]
    assert network.leftovers(lab, container)  # the attachment exists...

    assert network.serves(lab, HOST_PORT)

    podman("rm", "--force", "--time", "0", container)
    assert network.leftovers(lab, container) == {}  # ...and is gone without a trace
    assert not sandbox.exists()
    assert not Path(f"/var/lib/cni/results/{network.NAME}-{container}-eth0").exists()


def test_container_exit_is_cleaned_up_by_conmon_and_start_attaches_again(lab, podman):
    """The DEL of an exiting container comes from conmon's `podman container cleanup`.

    That process has conmon's reduced environment (see tests/runtimes/podman.py);
    nobody else runs a DEL after `podman kill`.  `podman start` then attaches
    the same container ID again, in a new network namespace.
    """
    container = _web(podman)
    assert network.serves(lab, HOST_PORT)
    podman("kill", container)
    assert lab.wait_for(lambda: network.leftovers(lab, container) == {}), network.leftovers(
        lab, container
    )

    podman("start", container)
    assert network.serves(lab, HOST_PORT)
    podman("rm", "--force", "--time", "0", container)
    assert network.leftovers(lab, container) == {}


def _reload(podman: Podman) -> tuple[str, dict, dict]:
    """`podman network reload` of a web container: its ID, its network before and after."""
    container = _web(podman)
    before = podman.inspect(container)["NetworkSettings"]["Networks"][network.NAME]
    podman("network", "reload", container)
    after = podman.inspect(container)["NetworkSettings"]["Networks"][network.NAME]
    return container, before, after


def test_network_reload_keeps_the_host_port(lab, podman):
    container, _, _ = _reload(podman)
    dnat = network.names(container).dnat_chain
    assert dnat in lab.run(lab.node, "iptables-save", "-t", "nat").stdout


def test_network_reload_keeps_the_address(podman):
    _, before, after = _reload(podman)
    assert after["IPAddress"] == before["IPAddress"]
