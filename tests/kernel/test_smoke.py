from tests.kernel import networks


def test_pod_gets_an_address_and_reaches_the_node(lab):
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("p1")
    result = lab.add(conflist, pod)
    (ip,) = result["ips"]
    assert ip["address"].startswith("10.77.0.")
    assert lab.ping(pod.name, "10.77.0.1")
    lab.delete(conflist, pod)
