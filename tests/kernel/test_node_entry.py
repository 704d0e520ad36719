"""Plugins run in a node with `nsenter --net`, as the bench's harness runs them.

`ip netns exec`, which the tests and `netc run` use, also gives each plugin a
mount namespace with the node's /sys; `nsenter --net` enters the network
namespace alone, as a runtime starts plugins in a node's namespaces.  Both
sides of the bench must attach a pod the same either way: a plugin that read
/sys (the machine's, then) would attach it wrongly or fail.
"""

from __future__ import annotations

import pytest

from compiler import datatypes
from runtime import driver
from tests.kernel import networks
from tests.kernel.lab import CLIENT_IP, NODE_IP


@pytest.mark.parametrize("target", ["netc", "reference"])
def test_a_pod_attached_through_nsenter_serves_its_host_port_and_leaves_nothing(lab, target):
    conflist = driver.Conflist(lab.network(networks.FULL, target).read_bytes())
    pod = lab.pod("web")
    invocation = datatypes.replace(lab.invocation(pod, ports=("8080:80",)), node_entry="nsenter")
    result = driver.add(conflist, invocation)
    gateway = result["ips"][0]["gateway"]
    assert lab.ping(pod.name, gateway), f"{pod.name} cannot reach {gateway}"
    lab.serve(pod.name, "tcp", 80, "web")  # the lab stops it
    assert lab.ask(lab.client, "tcp", NODE_IP, 8080) == f"web {CLIENT_IP}"
    driver.delete(conflist, invocation)
    veths = lab.run(lab.node, "ip", "-o", "link", "show", "type", "veth").stdout.splitlines()
    assert [v for v in veths if " eth0@" not in v] == [], veths  # eth0: the lab's underlay
