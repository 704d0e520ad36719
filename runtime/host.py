"""The kernel as one CNI call sees it: the node's network namespace and the pod's.

Operations say *where* they act (`node` or `sandbox`); `Host` hands them a
netlink handle or a sysctl file in that namespace.  The pod's namespace is
opened only if an operation needs it, and a DEL whose namespace is already
gone simply has none: sandbox operations are then skipped (their objects went
with the namespace).

Sysctls are read where this process finds the kernel's /proc/sys: /proc/sys
itself, or -- for netc's agent, whose container's /proc/sys is read-only --
the node's /proc/sys/net mounted elsewhere (`use_proc_sys`).  A net sysctl
resolves by the network namespace of the task that opens it, whatever the
mount, so the agent on the node's network sees the node's values.
"""

from __future__ import annotations

import contextlib
import os

from compiler.errors import NetcError
from compiler.planner.ops import Where
from runtime.netlink.rtnl import Link, Rtnl
from runtime.netns import Netns

PROC_SYS = "/proc/sys"
_proc_sys = [PROC_SYS]


def use_proc_sys(root: str) -> None:
    """Read and write sysctls below `root` instead of /proc/sys (e.g. /host/proc/sys)."""
    _proc_sys[:] = [root.rstrip("/") or "/"]


def sysctl_file(path: str) -> str:
    """Where this process finds a sysctl: `path` relative to /proc/sys, or absolute below it."""
    relative = path.removeprefix(PROC_SYS + "/") if path.startswith(PROC_SYS + "/") else path
    if os.path.isabs(relative):
        raise ValueError(f"{path} is not below {PROC_SYS}")
    return os.path.join(_proc_sys[0], relative)


class SandboxGone(NetcError):
    """The operation needs the pod's namespace and there is none."""


class Host:
    """Netlink handles and sysctls in the node and (lazily) the sandbox namespace."""

    def __init__(self, sandbox_path: str | None) -> None:
        self.node = Rtnl()
        self.sandbox_path = sandbox_path
        self._sandbox: Netns | None = None
        self._pod: Rtnl | None = None

    def close(self) -> None:
        """Release sockets and namespace handles."""
        self.node.close()
        if self._pod is not None:
            self._pod.close()
        if self._sandbox is not None:
            self._sandbox.close()

    @property
    def sandbox(self) -> Netns:
        """The pod's namespace handle (opened on first use)."""
        if self._sandbox is None:
            if not self.sandbox_path:
                raise SandboxGone("no network namespace was given")
            self._sandbox = Netns(self.sandbox_path)
        return self._sandbox

    def rtnl(self, where: Where) -> Rtnl:
        """The rtnetlink handle of the node's namespace or the pod's."""
        if where != Where.SANDBOX:
            return self.node
        if self._pod is None:
            with self.sandbox.entered():
                self._pod = Rtnl(changes=self.node.changes)
        return self._pod

    def link(self, where: Where, name: str) -> Link | None:
        """A link by name in the node's namespace or the pod's."""
        return self.rtnl(where).link(name)

    def identified(self, where: Where, name: str) -> Link | None:
        """A link by name, for its identity alone: index, name, kind, MAC (`Rtnl.identified`)."""
        return self.rtnl(where).identified(name)

    def forget_links(self) -> None:
        """Look links up again in both namespaces (`Rtnl` keeps them until a change)."""
        self.node.forget_links()

    def _inside(self, where: Where) -> contextlib.AbstractContextManager[None]:
        return self.sandbox.entered() if where == Where.SANDBOX else contextlib.nullcontext()

    def read_sysctl(self, where: Where, path: str) -> str | None:
        """A /proc/sys value (e.g. path net/ipv4/ip_forward), or None if it does not exist."""
        try:
            with self._inside(where), open(sysctl_file(path)) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return None

    def write_sysctl(self, where: Where, path: str, value: str) -> None:
        """Set a /proc/sys value in one of the namespaces."""
        with self._inside(where), open(sysctl_file(path), "w") as handle:
            handle.write(value)
