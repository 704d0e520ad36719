"""`netc serve-cni`: calls handed to a warm server behave exactly like cold ones.

But for one thing: a DEL answers once the pod is cut off, and its devices go after.
"""

from compiler.datatypes import replace
from runtime import driver
from runtime.install import identity
from tests.kernel import networks
from tests.kernel.warm import serve_full_lifecycle


def test_add_check_del_through_the_server_give_the_cold_results(lab, warm):
    serve_full_lifecycle(lab, warm)
    assert warm.alive(), "the server must survive its calls"


def test_errors_come_back_with_their_code(lab, warm):
    conflist = lab.network(networks.FULL)
    lab.add(conflist, lab.pod("a"), ports=("8080:80",))
    status, error = lab.plugin("{not json", {"CNI_COMMAND": "ADD"})
    assert (status, error["code"]) == (1, 6)


def test_without_a_server_the_launcher_runs_the_plugin_itself(lab, warm):
    warm.stop()
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("p")
    assert lab.add(conflist, pod)["ips"]
    lab.delete(conflist, pod)


def test_a_server_of_another_netc_is_not_used(lab, warm):
    launcher = lab.bin_dir / "netc-cni"
    launcher.write_text(launcher.read_text().replace(identity(), "netc 0.0.0 /elsewhere"))
    conflist = lab.network(networks.BRIDGE)
    assert lab.add(conflist, lab.pod("p"))["ips"]
    assert warm.calls_served() == 0


def test_a_del_answers_with_the_pod_cut_off_and_its_devices_go_after_under_its_lock(
    lab, warm, tmp_path
):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    options = {"ports": ("8080:80",), "bandwidth": "ingress=8M,egress=4M"}
    lab.add(conflist, pod, **options)
    assert lab.ping(pod.name, "10.77.0.1")
    log = tmp_path / "plugin.log"
    chain = driver.Conflist(conflist.read_bytes())
    driver.delete(chain, replace(lab.invocation(pod, **options), stderr_log=str(log)))

    assert "its devices go after this answer" in log.read_text()
    assert not lab.ping(pod.name, "10.77.0.1"), "cut off from the answer on"
    nat = lab.run(lab.node, "iptables-save", "-t", "nat").stdout
    assert "NETC-DN-" not in nat, "its DNAT was committed away before the answer"
    # The same attachment again at once: its ADD waits for the DEL's lock, then finds the
    # old devices gone (an ifb of the same derived name left would fail it).
    lab.add(conflist, pod, **options)
    assert lab.ping(pod.name, "10.77.0.1")
    lab.delete(conflist, pod, **options)
    assert warm.wait_idle(), "the DEL's process ends once its devices are gone"
    links = lab.run(lab.node, "ip", "-o", "link").stdout
    assert "veth" not in links and "nifb" not in links, links
    assert not list((lab.tmp / "state").rglob("*.json")), "the record went last"
    assert "after its answer" not in warm.log(), warm.log()
