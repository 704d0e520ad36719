"""The process the harness runs a sandbox's other lists in, beside the pod network's."""

from __future__ import annotations

import os
from functools import partial

import pytest

from bench.beside import Beside
from bench.implementations import NETC, NETWORK, Implementation, Pod, sandbox_lists
from runtime import driver


def test_a_call_runs_in_the_other_process_and_its_value_comes_back():
    with Beside() as beside:
        beside.start(os.getpid)
        beside.start(partial(sorted, [3, 1, 2]))
        assert beside.result() == beside.pid != os.getpid()
        assert beside.result() == [1, 2, 3]


def test_a_calls_exception_is_raised_in_the_harness():
    with Beside() as beside:
        beside.start(partial(int, "not a number"))
        with pytest.raises(ValueError, match="not a number"):
            beside.result()
        beside.start(os.getpid)  # and the process serves on
        assert beside.result() == beside.pid


def test_the_process_ends_with_its_requests():
    beside = Beside()
    beside.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(beside.pid, os.WNOHANG)


def ran_where(conflist: driver.Conflist, invocation: driver.Invocation) -> dict[str, object]:
    """Stands for `driver.add`: which process ran which list, for which interface."""
    return {"list": conflist.name, "ifname": invocation.ifname, "pid": os.getpid()}


def test_the_loopback_list_runs_beside_the_pod_networks_which_runs_in_the_harness(monkeypatch):
    monkeypatch.setattr(driver, "add", ran_where)
    text = NETWORK.format(state="/run/x", data="/var/lib/x", prefix=24)
    impl = Implementation(NETC, "node", sandbox_lists(text, NETC), ("/bin",), "/cache", ())
    pod = Pod("pod-netns", "c" * 64, 40080)
    with Beside() as beside:  # forked once `driver.add` is the stand-in
        result = impl.add(pod, beside)
        beside.start(partial(driver.add, impl.conflists[0], impl.invocation(pod, "lo")))
        loopback = beside.result()
    assert result == {"list": "benchnet", "ifname": "eth0", "pid": os.getpid()}
    assert loopback["list"] == "cni-loopback" and loopback["pid"] == beside.pid
