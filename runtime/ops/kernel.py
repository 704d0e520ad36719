"""Kernel settings: sysctls (in the node or the pod) and the br_netfilter module.

`net.bridge.bridge-nf-call-iptables=1` is why bridged pod-to-pod traffic
meets kube-proxy's iptables rules; no reference plugin sets it, netc does.
The bridge sysctls exist only once br_netfilter is loaded, hence the module
operation before them.  These sysctls are per network namespace.
"""

from __future__ import annotations

import os

from compiler.planner.ops import Observation, Operation
from compiler.planner.params import KernelModuleParams, SysctlParams
from runtime import programs
from runtime.host import sysctl_file
from runtime.ops.base import (
    IN_PLACE_NOW,
    Handler,
    KeptByDel,
    OperationRefused,
    Run,
    differs,
    missing,
)


class SysctlHandler(KeptByDel, Handler[SysctlParams]):
    """One /proc/sys value; an optional one may be absent (IPv6 turned off at boot)."""

    params = SysctlParams

    def ensure(self, op: Operation[SysctlParams], run: Run) -> bool:
        path, value = op.params.path, op.params.value
        current = run.host.read_sysctl(op.where, path)
        if current is None:
            if op.params.optional:
                return False
            raise OperationRefused(f"/proc/sys/{path} does not exist")
        if current == value:
            return False
        run.host.write_sysctl(op.where, path, value)
        return True

    def observe(self, op: Operation[SysctlParams], run: Run) -> Observation:
        current = run.host.read_sysctl(op.where, op.params.path)
        if current is None:
            if op.params.optional:
                return IN_PLACE_NOW
            return missing("the setting does not exist")
        if current != op.params.value:
            return differs(f"is {current}, want {op.params.value}")
        return IN_PLACE_NOW


class KernelModuleHandler(KeptByDel, Handler[KernelModuleParams]):
    """A kernel module, detected by a /proc/sys path it creates, loaded with modprobe if absent.

    Where modprobe is missing or may not load modules (netc's agent without
    SYS_MODULE), the failure names the module and the ways to load it.
    """

    params = KernelModuleParams

    def ensure(self, op: Operation[KernelModuleParams], run: Run) -> bool:
        if os.path.exists(sysctl_file(op.params.probe)):
            return False
        name = op.params.name
        try:
            programs.run("modprobe", name)
        except (programs.ProgramFailed, programs.ProgramMissing) as error:
            raise OperationRefused(
                f"the kernel module {name} is not loaded, and netc cannot load it ({error}): "
                f"load it on the node (modprobe {name}, and name it in /etc/modules-load.d/ for "
                "the next boots), or let netc's agent load modules (netc build --target "
                "kubernetes --load-modules)"
            ) from error
        return True

    def observe(self, op: Operation[KernelModuleParams], run: Run) -> Observation:
        return IN_PLACE_NOW if os.path.exists(sysctl_file(op.params.probe)) else missing()


HANDLERS = (SysctlHandler(), KernelModuleHandler())
