"""`netc serve-cni`: calls handed to a warm server behave exactly like cold ones."""

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
