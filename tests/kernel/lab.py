"""A throwaway lab of network namespaces for tests against the real kernel.

    client (198.18.0.2) --veth-- node (198.18.0.1) --bridge-- pods

The node namespace stands in for the host: the plugin runs there, and the
bridge, iptables rules, qdiscs and sysctls it creates stay there.  The client
is "another host" on the node's uplink; it has no route to the pod subnets,
so pod traffic reaching it must have been masqueraded.  Names carry a random
prefix, so tests run in parallel; `close()` deletes every namespace the lab
made (and with them every link, rule and qdisc inside), also after a failure.
198.18.0.0/15 is the benchmarking range (RFC 2544): never routed anywhere.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pyroute2 import NetNS

from compiler import emit
from compiler.pipeline import compile_sources
from compiler.planner.context import PortMapping, bandwidth_from_option, mapping_from_option
from compiler.source import SourceFile
from runtime import driver

NODE_IP = "198.18.0.1"
NODE_IP6 = "fd00:198::1"
CLIENT_IP6 = "fd00:198::2"
IFF_UP = 0x1
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254
CLIENT_IP = "198.18.0.2"


def sh(
    *command: str, check: bool = True, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run a command, text in and out."""
    return subprocess.run(
        command, check=check, capture_output=True, text=True, input=stdin, timeout=timeout
    )


@dataclass(frozen=True)
class Pod:
    """A pod sandbox: a network namespace and the container ID it is attached under."""

    name: str
    container_id: str

    @property
    def netns(self) -> str:
        return f"/run/netns/{self.name}"


class Namespaces:
    """Namespaces with a random name prefix, the processes started in them, and their removal.

    What every kind of lab shares: `close()` stops the processes (by PID) and
    deletes every namespace made here, and with them everything inside.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tag = "nc" + secrets.token_hex(3)
        self.tmp = tmp_path
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def netns(self, role: str) -> str:
        """A new namespace with `lo` up; deleted by `close`."""
        name = f"{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def remove_netns(self, name: str) -> None:
        """Delete one of the lab's namespaces now (a pod whose sandbox went away)."""
        sh("ip", "netns", "del", name)
        self.namespaces.remove(name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *failure: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the lab's processes, delete its namespaces (links, rules, qdiscs go along)."""
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    def run(
        self,
        netns: str,
        *command: str,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """A command inside one of the lab's namespaces."""
        return sh("ip", "netns", "exec", netns, *command, check=check, stdin=stdin, timeout=timeout)

    def spawn(self, netns: str, *command: str, stderr: bool | Path = False) -> subprocess.Popen:
        """A background process in a namespace, stopped by `close` (by its PID).

        `ip netns exec` execs the command, so the process's PID is the command's.
        `stderr` True gives a pipe; a path, a log file (a pipe nobody reads
        would block a chatty process).
        """
        with contextlib.ExitStack() as files:
            target: Any = subprocess.PIPE if stderr is True else subprocess.DEVNULL
            if isinstance(stderr, Path):
                target = files.enter_context(stderr.open("w"))
            process = subprocess.Popen(
                ["ip", "netns", "exec", netns, *command],
                text=True,
                stdout=subprocess.PIPE,
                stderr=target,
            )
        self.processes.append(process)
        return process

    def serve(self, netns: str, protocol: str, port: int, tag: str) -> subprocess.Popen:
        """A netprobe responder on `port`, ready when this returns; its process."""
        process = self.spawn(
            netns, sys.executable, "-m", "tests.kernel.netprobe", "serve", protocol, str(port), tag
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return process

    def ask(
        self, netns: str, protocol: str, host: str, port: int, source_port: int | None = None
    ) -> str | None:
        """The answer of a netprobe responder (its tag and the source it saw), or None."""
        extra = ("--sport", str(source_port)) if source_port else ()
        done = self.run(
            netns,
            sys.executable,
            "-m",
            "tests.kernel.netprobe",
            "ask",
            protocol,
            host,
            str(port),
            *extra,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def ping(self, netns: str, address: str, count: int = 1) -> bool:
        """Whether `address` answers ICMP echo from `netns` (IPv6 addresses work too)."""
        done = self.run(
            netns, "ping", "-c", str(count), "-W", "2", "-i", "0.2", address, check=False
        )
        return done.returncode == 0

    def kernel_state(self, netns: str) -> dict[str, object]:
        """A namespace's kernel state, without what changes by itself (carrier, DAD, counters).

        Links, addresses and routes are read with pyroute2 -- an implementation
        independent of netc's own netlink code, so the tests do not take the
        plugin's word for what it did.
        """
        with NetNS(netns) as kernel:
            names = {link["index"]: link.get("ifname") for link in kernel.get_links()}
            links = sorted(
                (
                    link.get("ifname"),
                    link.get("mtu"),
                    names.get(link.get("master")),
                    bool(link["flags"] & IFF_UP),
                    link.get("address"),
                    link.get(("linkinfo", "kind")),
                )
                for link in kernel.get_links()
            )
            addresses = sorted(
                (names[a["index"]], a.get("address"), a["prefixlen"])
                for a in kernel.get_addr()
                if a["scope"] != RT_SCOPE_LINK
            )
            routes = sorted(
                (
                    (r.get("dst"), r["dst_len"], r.get("gateway"), names.get(r.get("oif")))
                    for r in kernel.get_routes(table=RT_TABLE_MAIN)
                ),
                key=str,
            )
        qdiscs = json.loads(self.run(netns, "tc", "-j", "qdisc", "show").stdout or "[]")
        return {
            "links": links,
            "addresses": addresses,
            "routes": routes,
            "nat": sorted(
                line
                for line in self.run(netns, "iptables-save", "-t", "nat").stdout.splitlines()
                if not line.startswith(("#", ":"))
            ),
            "qdiscs": sorted(
                (q["dev"], q["kind"], q["handle"], json.dumps(q.get("options"))) for q in qdiscs
            ),
        }

    def wait_for(self, condition, timeout: float = 5.0) -> bool:
        """Poll `condition()` until it is true or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return bool(condition())


class Lab(Namespaces):
    """Namespaces, a built network and a CNI driver aimed at the node."""

    def __init__(self, tmp_path: Path, bin_dir: Path) -> None:
        super().__init__(tmp_path)
        self.bin_dir = bin_dir
        self.node = self.netns("node")
        self.client = self.netns("client")
        self._uplink()

    def _uplink(self) -> None:
        sh(
            "ip",
            "-n",
            self.node,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.client,
        )
        for name, address, address6 in (
            (self.node, NODE_IP, NODE_IP6),
            (self.client, CLIENT_IP, CLIENT_IP6),
        ):
            # no duplicate address detection on the uplink: a tentative link-local
            # address would delay neighbour discovery for a second after setup
            self.run(name, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
            sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", name, "addr", "add", f"{address6}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", name, "link", "set", "eth0", "up")

    def pod(self, role: str) -> Pod:
        """A new pod sandbox."""
        return Pod(self.netns(role), f"{self.tag}-{role}-{secrets.token_hex(4)}")

    def network(self, text: str, target: str = "netc", cni_version: str | None = None) -> Path:
        """Compile `.netdsl` text, with {state} and {data} set to lab directories."""
        source = text.replace("{state}", str(self.tmp / "state")).replace(
            "{data}", str(self.tmp / "ipam")
        )
        (self.tmp / "lab.netdsl").write_text(source)
        compilation = compile_sources([SourceFile("lab.netdsl", source)])
        assert compilation.ok, compilation.diagnostics
        (network,) = compilation.networks
        path = self.tmp / f"{network.name}-{target}.conflist"
        path.write_text(emit.render(emit.conflist(network, target, cni_version)))
        return path

    def invocation(
        self,
        pod: Pod,
        *,
        ports: tuple[str, ...] = (),
        bandwidth: str | None = None,
        ifname: str = "eth0",
        args: str = "",
        netns: str | None = None,
    ) -> driver.Invocation:
        """What a runtime would pass for `pod` (ports as HOST:CONTAINER[/proto][@ip])."""
        mappings: tuple[PortMapping, ...] = tuple(mapping_from_option(p) for p in ports)
        request = bandwidth_from_option(bandwidth) if bandwidth else None
        return driver.Invocation(
            pod.container_id,
            netns or pod.netns,
            ifname,
            args,
            mappings,
            request,
            (str(self.bin_dir), "/usr/lib/cni"),
            str(self.tmp / "cache"),
            self.node,
        )

    def add(self, conflist: Path, pod: Pod, **options: Any) -> dict[str, Any]:
        """CNI ADD through the conflist's chain, as libcni would run it."""
        return driver.add(driver.Conflist(conflist.read_bytes()), self.invocation(pod, **options))

    def delete(self, conflist: Path, pod: Pod, **options: Any) -> None:
        """CNI DEL through the chain, in reverse."""
        driver.delete(driver.Conflist(conflist.read_bytes()), self.invocation(pod, **options))

    def check(self, conflist: Path, pod: Pod, **options: Any) -> None:
        """CNI CHECK through the chain."""
        driver.check(driver.Conflist(conflist.read_bytes()), self.invocation(pod, **options))

    def plugin(self, stdin: str | bytes, environment: dict[str, str]) -> tuple[int, Any]:
        """netc-cni called directly inside the node: (exit status, parsed stdout or None)."""
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(
            ["ip", "netns", "exec", self.node, str(self.bin_dir / "netc-cni")],
            input=data,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **environment},
            capture_output=True,
            check=False,
        )
        output = json.loads(done.stdout) if done.stdout.strip() else None
        return done.returncode, output

    def snapshot(self) -> dict[str, object]:
        """The node's kernel state, without what changes by itself (see `kernel_state`)."""
        return self.kernel_state(self.node)
