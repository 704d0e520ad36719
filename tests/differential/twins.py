"""Twin labs: one compiled network run by the stock plugins and by netc, side by side.

Each target gets its own lab (its own node, client and pod namespaces, its
own IPAM and state directories), so the two never see each other's rules.
Both conflists come from the same compiled networks; only the directories are
rewritten, to the lab's tmp dir, so nothing touches /var/lib/cni or /run/netc.

A lab's node starts as a Kubernetes node: `bridge-nf-call-iptables=1`, which
kubeadm's preflight demands.  That is also netc's setting, so the comparison
isolates the plugins; tests of that difference set it to 0 first (a Debian
host where nothing loaded br_netfilter).  With 0 the reference's NAT to a pod
is routed through the node and a pod reaches its own host port even without
hairpin mode; with 1 br_netfilter bridges it back out the port it came from,
which needs hairpin mode (see docs/differences.md).
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from compiler import datatypes, emit
from compiler.ir import Network
from compiler.planner.context import BandwidthRequest, PortMapping
from runtime import driver
from tests.kernel.lab import NODE_IP, Lab, Pod
from tests.support import compile_example

TARGETS = ("reference", "netc")
BRIDGE_EXAMPLES = ("pods", "minimal", "multi")
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"
IPERF_PORTS = 5201
"""First iperf3 port; each pod gets its own, so several pods can be measured at once."""


def compiled(example: str) -> tuple[Network, ...]:
    """The bridge networks of an example set, compiled together."""
    compilation, _ = compile_example(example)
    assert compilation.ok, compilation.diagnostics
    return tuple(n for n in compilation.networks if n.bridge is not None)


def retarget(network: Network, tmp: Path) -> Network:
    """The network with its IPAM data dir and netc state dir below `tmp`."""
    assert network.ipam is not None
    ipam = datatypes.replace(network.ipam, data_dir=str(tmp / "ipam"))
    return datatypes.replace(network, ipam=ipam, state_dir=str(tmp / "state"))


def each(labs: dict[str, TwinLab], function: Callable[[TwinLab], Any]) -> dict[str, Any]:
    """`function` on every lab at once, by target: {"reference": ..., "netc": ...}."""
    return dict(zip(labs, run_both(function, labs.values()), strict=True))


def run_both(function, items: Iterable[Any]) -> list[Any]:
    """`function` over items concurrently (labs are independent; probes mostly wait)."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(function, items))


class TwinLab(Lab):
    """A lab running one target's conflists, with pods known by role (`network/role`)."""

    def __init__(self, target: str, tmp: Path, bin_dir: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp, bin_dir)
        self.target = target
        self.conflists: dict[str, Path] = {}
        self.pods: dict[str, Pod] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, str] = {}
        self.iperf_ports: dict[str, int] = {}
        self.sysctl(BRIDGE_NF, "1")

    def sysctl(self, key: str, value: str | None = None, where: str = "node") -> str:
        """Read (or first write) a sysctl of the node, or of the pod `where` names."""
        namespace = self.node if where == "node" else self.pods[where].name
        if value is not None:
            self.run(namespace, "sysctl", "-qw", f"{key}={value}")
        return self.run(namespace, "sysctl", "-n", key).stdout.strip()

    def build(self, networks: Iterable[Network]) -> None:
        """This target's conflist of each network, directories moved into the lab."""
        for network in networks:
            document = emit.conflist(retarget(network, self.tmp), self.target)
            path = self.tmp / f"{network.name}.conflist"
            path.write_text(emit.render(document))
            self.conflists[network.name] = path

    def invocation(
        self,
        pod: Pod,
        *,
        request: BandwidthRequest | None = None,
        mappings: tuple[PortMapping, ...] = (),
        **options: Any,
    ) -> driver.Invocation:
        """As `Lab.invocation`, with bursts and mappings given as objects."""
        base = super().invocation(pod, **options)
        return datatypes.replace(
            base, bandwidth=request or base.bandwidth, port_mappings=mappings or base.port_mappings
        )

    def attach(self, network: str, role: str, **options: Any) -> dict[str, Any]:
        """A new pod `role` on `network`; its CNI result is kept under `network/role`."""
        key = f"{network}/{role}"
        pod = self.pod(key.replace("/", "-"))
        self.pods[key] = pod
        self.results[key] = self.add(self.conflists[network], pod, **options)
        return self.results[key]

    def detach(self, key: str, **options: Any) -> None:
        """CNI DEL of the pod `network/role`."""
        network, _, _ = key.partition("/")
        self.delete(self.conflists[network], self.pods[key], **options)

    def address(self, key: str, family: int = 4) -> str:
        """The pod's address of one family, from its CNI result."""
        ips = [ip["address"].split("/")[0] for ip in self.results[key]["ips"]]
        return next(ip for ip in ips if (":" in ip) == (family == 6))

    def host_veth(self, key: str) -> str:
        """The node-side veth of a pod, from its CNI result."""
        interfaces = self.results[key]["interfaces"]
        return next(
            i["name"] for i in interfaces if not i.get("sandbox") and i["name"].startswith("veth")
        )

    def redirects(self, key: str) -> list[tuple[str, str]]:
        """(device, verdict) of each mirred action on the ingress of pod `key`'s host veth."""
        listing = self.node_text(
            "tc", "filter", "show", "dev", self.host_veth(key), "parent", "ffff:"
        )
        return re.findall(r"mirred \(Egress Redirect to device (\S+)\) (\w+)", listing)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until no address on the node is tentative (IPv6 DAD still running)."""

        def settled() -> bool:
            listing = json.loads(self.node_text("ip", "-6", "-j", "addr") or "[]")
            return not any(
                a.get("tentative")
                for link in listing
                for a in link.get("addr_info", [])
                if a.get("scope") == "global"
            )

        assert self.wait_for(settled, timeout), self.node_text("ip", "-6", "addr")

    def iperf(self, key: str, direction: str, seconds: int = 5, skip: int = 2) -> float:
        """Bits per second of TCP to pod `key` (ingress) or from it (egress), node at the far end.

        The median of the receiver's one-second rates after the first `skip`
        seconds (slow start, the burst, a server slow to start reading when
        several run at once), so one second stalled by a busy machine does not
        decide.  iperf3's own summary misreports shaped rates by up to 25 %
        with -O or -R.
        """
        seconds_after = self._iperf_seconds(key, direction, seconds)[skip:seconds]
        return statistics.median(i["bits_per_second"] for i in seconds_after)

    def iperf_average(self, key: str, direction: str, seconds: int) -> float:
        """Bits per second over a whole run, first second included (what a burst is for)."""
        run = self._iperf_seconds(key, direction, seconds)
        return sum(i["bytes"] for i in run) * 8 / sum(i["seconds"] for i in run)

    def _iperf_seconds(self, key: str, direction: str, seconds: int) -> list[dict[str, Any]]:
        """The receiver's per-second counts of one iperf3 run (a one-shot server)."""
        pod, address = self.pods[key].name, self.address(key)
        receiver, sender, target = (
            (pod, self.node, address) if direction == "ingress" else (self.node, pod, NODE_IP)
        )
        port = self.iperf_ports.setdefault(key, IPERF_PORTS + len(self.iperf_ports))
        server = self.spawn(receiver, "iperf3", "-s", "-1", "-J", "-p", str(port))
        assert self.wait_for(lambda: f":{port} " in self.run(receiver, "ss", "-Hltn").stdout)
        self.run(
            sender,
            "iperf3",
            "-c",
            target,
            "-p",
            str(port),
            "-t",
            str(seconds),
            timeout=seconds + 20,
        )
        output, _ = server.communicate(timeout=10)
        return [i["sum"] for i in json.loads(output)["intervals"]]

    def link(self, key: str, device: str) -> dict[str, Any]:
        """`ip -d -j link` details of a device on the node ("node") or in pod `key`."""
        namespace = self.node if key == "node" else self.pods[key].name
        (details,) = json.loads(
            self.run(namespace, "ip", "-d", "-j", "link", "show", "dev", device).stdout
        )
        return details

    def node_text(self, *command: str) -> str:
        """The output of a command run in the node namespace."""
        return self.run(self.node, *command).stdout
