"""The sysctl handler without a kernel: an optional setting may be absent, a required may not.

The bridge's accept_ra=0 is planned for IPv4-only networks too (a pod's
router advertisement must not give the node a route, CVE-2020-10749), but a
node booted with ipv6.disable=1 has no /proc/sys/net/ipv6: there it is
skipped rather than failing every ADD.
"""

from types import SimpleNamespace

import pytest

from compiler.planner.ops import Operation, Phase, State
from compiler.planner.params import KernelModuleParams, SysctlParams
from runtime.host import use_proc_sys
from runtime.ops.base import OperationRefused
from runtime.ops.kernel import KernelModuleHandler, SysctlHandler


class Proc:
    """/proc/sys as a dict; absent keys do not exist."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def read_sysctl(self, where: str, path: str) -> str | None:
        return self.values.get(path)

    def write_sysctl(self, where: str, path: str, value: str) -> None:
        self.values[path] = value


def _op(optional: bool) -> Operation[SysctlParams]:
    params = SysctlParams("net/ipv6/conf/cni0/accept_ra", "0", optional)
    return Operation("net.ipv6.conf.cni0.accept_ra", "", params, Phase.NODE)


def test_an_absent_optional_setting_is_skipped_and_observed_as_in_place():
    run = SimpleNamespace(host=Proc())
    SysctlHandler().ensure(_op(optional=True), run)
    assert run.host.values == {}
    assert SysctlHandler().observe(_op(optional=True), run).state == State.IN_PLACE


def test_an_absent_required_setting_refuses_and_is_observed_as_missing():
    run = SimpleNamespace(host=Proc())
    with pytest.raises(OperationRefused, match="does not exist"):
        SysctlHandler().ensure(_op(optional=False), run)
    assert SysctlHandler().observe(_op(optional=False), run).state == State.CREATE


@pytest.mark.parametrize("optional", [True, False])
def test_a_present_setting_is_written_either_way(optional):
    run = SimpleNamespace(host=Proc())
    run.host.values["net/ipv6/conf/cni0/accept_ra"] = "1"
    SysctlHandler().ensure(_op(optional), run)
    assert run.host.values["net/ipv6/conf/cni0/accept_ra"] == "0"


def _module(name: str, probe: str) -> Operation[KernelModuleParams]:
    return Operation(name, "", KernelModuleParams(name, probe), Phase.NODE)


def test_a_module_that_cannot_be_loaded_is_named_with_the_ways_to_load_it():
    """netc's agent without SYS_MODULE (or modprobe): not ready, saying what to do."""
    op = _module("netc_no_such_module", "/proc/sys/net/netc_no_such_module")
    with pytest.raises(OperationRefused) as refused:
        KernelModuleHandler().ensure(op, SimpleNamespace())
    assert "the kernel module netc_no_such_module is not loaded, and netc cannot load it" in str(
        refused.value
    )
    assert "modprobe netc_no_such_module" in str(refused.value)
    assert "netc build --target kubernetes --load-modules" in str(refused.value)


def test_a_module_is_probed_where_the_sysctls_are(tmp_path):
    (tmp_path / "net" / "bridge").mkdir(parents=True)
    op = _module("br_netfilter", "/proc/sys/net/bridge")
    use_proc_sys(str(tmp_path))
    try:
        assert KernelModuleHandler().ensure(op, SimpleNamespace()) is False
        assert KernelModuleHandler().observe(op, SimpleNamespace()).state == State.IN_PLACE
    finally:
        use_proc_sys("/proc/sys")
