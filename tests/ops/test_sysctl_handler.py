"""The sysctl handler without a kernel: an optional setting may be absent, a required may not.

The bridge's accept_ra=0 is planned for IPv4-only networks too (a pod's
router advertisement must not give the node a route, CVE-2020-10749), but a
node booted with ipv6.disable=1 has no /proc/sys/net/ipv6: there it is
skipped rather than failing every ADD.
"""

from types import SimpleNamespace

import pytest

from compiler.planner.ops import Kind, Operation, Phase, State
from runtime.ops.base import Refused
from runtime.ops.kernel import SysctlHandler


class Proc:
    """/proc/sys as a dict; absent keys do not exist."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def read_sysctl(self, where: str, path: str) -> str | None:
        return self.values.get(path)

    def write_sysctl(self, where: str, path: str, value: str) -> None:
        self.values[path] = value


def _op(optional: bool) -> Operation:
    params = {"path": "net/ipv6/conf/cni0/accept_ra", "value": "0"}
    if optional:
        params["optional"] = True
    return Operation(Kind.SYSCTL, "net.ipv6.conf.cni0.accept_ra", "", params, Phase.NODE)


def test_an_absent_optional_setting_is_skipped_and_observed_as_in_place():
    run = SimpleNamespace(host=Proc())
    SysctlHandler().ensure(_op(optional=True), run)
    assert run.host.values == {}
    assert SysctlHandler().observe(_op(optional=True), run).state == State.IN_PLACE


def test_an_absent_required_setting_refuses_and_is_observed_as_missing():
    run = SimpleNamespace(host=Proc())
    with pytest.raises(Refused, match="does not exist"):
        SysctlHandler().ensure(_op(optional=False), run)
    assert SysctlHandler().observe(_op(optional=False), run).state == State.CREATE


@pytest.mark.parametrize("optional", [True, False])
def test_a_present_setting_is_written_either_way(optional):
    run = SimpleNamespace(host=Proc())
    run.host.values["net/ipv6/conf/cni0/accept_ra"] = "1"
    SysctlHandler().ensure(_op(optional), run)
    assert run.host.values["net/ipv6/conf/cni0/accept_ra"] == "0"
