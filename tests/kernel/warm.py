"""A `netc serve-cni` for a lab: started in its node, watched through its log and /proc."""

from __future__ import annotations

import sys
from pathlib import Path

from runtime.install import install
from tests.kernel import networks
from tests.kernel.lab import Lab
from tests.runtimes.host import children


class WarmServer:
    """The lab's warm server and the warm launcher aimed at it (the lab's plugin from now on)."""

    def __init__(
        self,
        lab: Lab,
        handover_timeout: float = 1.0,
        iptables: str | None = None,
        own_pids: bool = False,
    ) -> None:
        """`iptables`: the backend the server runs (NETC_IPTABLES), as the agent starts it;
        `own_pids`: the server in a PID namespace of its own, as in the agent's container
        (its callers are in none of its PID namespaces)."""
        self.socket = lab.tmp / "cni.sock"
        self.log_path = lab.tmp / "server.log"
        lab.bin_dir = lab.tmp / "warm-bin"
        install(lab.bin_dir, warm_socket=str(self.socket))
        backend = ["env", f"NETC_IPTABLES={iptables}"] if iptables else []
        pids = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"] if own_pids else []
        self.process = lab.spawn(
            lab.node,
            *pids,
            *backend,
            sys.executable,
            "-m",
            "runtime.cli",
            "serve-cni",
            "--socket",
            str(self.socket),
            "--handover-timeout",
            str(handover_timeout),
            stderr=self.log_path,
        )
        self.pid = self.process.pid
        self.lab = lab
        assert lab.wait_for(lambda: "listening" in self.log(), 30), self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def calls_served(self) -> int:
        """Calls a child of the server took over (each logs one line)."""
        return self.log().count("call handed to process")

    def alive(self) -> bool:
        return self.process.poll() is None

    def children(self) -> list[int]:
        """PIDs whose parent is the server."""
        return children(self.pid)

    def busy(self) -> list[int]:
        """The children serving a call: all but the spare blocked in accept()."""
        return [pid for pid in self.children() if not _accepting(pid)]

    def spare(self) -> int | None:
        """The server's only child when it is a spare waiting in accept() (one reading of the
        children, so a call child that ends and a spare just forked are never mistaken)."""
        children = self.children()
        return children[0] if len(children) == 1 and _accepting(children[0]) else None

    def wait_spare(self, timeout: float = 10) -> int:
        """The waiting spare, once there is one and nothing else (an AssertionError if none)."""
        assert self.lab.wait_for(lambda: self.spare() is not None, timeout), self.children()
        spare = self.spare()
        assert spare is not None
        return spare

    def wait_idle(self, timeout: float = 30) -> bool:
        """Whether every call's child has ended within `timeout` seconds (a spare remains)."""
        return self.lab.wait_for(lambda: not self.busy(), timeout)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


ACCEPT_SYSCALLS = {"43", "288"}
"""accept and accept4 on x86-64: what /proc/PID/syscall shows of a process blocked in one."""


def _accepting(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] in ACCEPT_SYSCALLS
    except (OSError, IndexError):
        return False


def serve_full_lifecycle(lab: Lab, warm: WarmServer) -> None:
    """ADD, CHECK and DEL of a pod on the full network, all taken by `warm`, with the cold
    plugin's results: an address, a gateway that answers, no veth left behind (once the
    DEL's devices, which go after its answer, are gone)."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(conflist, pod, ports=("8080:80",), bandwidth="ingress=8M,egress=4M")
    assert result["ips"][0]["address"].startswith("10.77.0.")
    assert lab.ping(pod.name, "10.77.0.1")
    lab.check(conflist, pod, ports=("8080:80",), bandwidth="ingress=8M,egress=4M")
    lab.delete(conflist, pod)
    assert lab.wait_for(lambda: "veth" not in lab.run(lab.node, "ip", "-o", "link").stdout)
    assert warm.calls_served() == 3
