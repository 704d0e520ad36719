"""netc-cni's compiled shim: the plugin of a node without Python, on the warm server's protocol.

Calls through the shim give what calls through the Python launcher give;
with no server to take a call, the shim runs its cold command when the node
has its interpreter, and otherwise answers CNI error 11 (try again later).
"""

from __future__ import annotations

import sys

import pytest

from runtime import shim
from runtime.install import identity, install
from tests.kernel import networks
from tests.kernel.warm import serve_full_lifecycle


@pytest.fixture(scope="session")
def compiled() -> bytes:
    return shim.compiled()


def _install(lab, compiled, **settings) -> None:
    """The shim as the lab's plugin, configured with `settings`."""
    settings.setdefault("identity", identity())
    settings.setdefault("socket", None)
    lab.bin_dir = lab.tmp / "shim-bin"
    lab.bin_dir.mkdir(exist_ok=True)
    target = lab.bin_dir / "netc-cni"
    target.write_bytes(shim.configure(compiled, **settings))
    target.chmod(0o755)


def test_calls_through_the_shim_are_served_warm_and_give_the_launchers_results(lab, warm, compiled):
    _install(lab, compiled, socket=str(warm.socket))
    serve_full_lifecycle(lab, warm)
    status, error = lab.plugin("{not json", {"CNI_COMMAND": "ADD"})
    assert (status, error["code"]) == (1, 6)


def test_version_is_answered_by_the_shim_itself(lab, compiled):
    _install(lab, compiled)
    status, answer = lab.plugin('{"cniVersion": "0.4.0"}', {"CNI_COMMAND": "VERSION"})
    assert status == 0 and answer["cniVersion"] == "0.4.0"
    assert "1.0.0" in answer["supportedVersions"]


def test_without_a_server_and_without_python_a_call_is_to_be_tried_again(lab, warm, compiled):
    warm.stop()
    _install(
        lab,
        compiled,
        socket=str(warm.socket),
        cold=["/nonexistent/python3", "-IS"],
        cold_requires=["/nonexistent/python3"],
    )
    conflist = lab.network(networks.BRIDGE)
    before = lab.snapshot()
    status, error = lab.plugin(
        conflist.read_text(),
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "c1",
            "CNI_IFNAME": "eth0",
            "CNI_NETNS": lab.pod("p").netns,
        },
    )
    assert status == 1 and error["code"] == 11, error
    assert "not running" in error["msg"] and str(warm.socket) in error["details"]
    assert lab.snapshot() == before


def test_without_a_server_the_cold_command_runs_where_the_node_has_python(lab, warm, compiled):
    warm.stop()
    cold = install(lab.tmp / "cold-bin")  # the Python launcher, cold only
    _install(
        lab,
        compiled,
        socket=str(warm.socket),
        cold=[sys.executable, "-IS", str(cold)],
        cold_requires=[sys.executable],
    )
    conflist = lab.network(networks.BRIDGE)
    pod = lab.pod("p")
    assert lab.add(conflist, pod)["ips"]
    lab.delete(conflist, pod)


def test_a_server_of_another_netc_is_not_handed_the_call(lab, warm, compiled):
    _install(lab, compiled, socket=str(warm.socket), identity="netc 0.0.0 /elsewhere")
    conflist = lab.network(networks.BRIDGE)
    status, error = lab.plugin(
        conflist.read_text(),
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "c1",
            "CNI_IFNAME": "eth0",
            "CNI_NETNS": lab.pod("p").netns,
        },
    )
    assert (status, error["code"]) == (1, 11)
    assert warm.calls_served() == 0
