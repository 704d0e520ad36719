"""A simulated cluster in network namespaces: nodes on an underlay switch, one behind a router.

    client  198.18.10.100 ─┐
    node-a  198.18.10.11  ─┤
    node-b  198.18.10.12  ─┤  switch: a bridge (underlay 198.18.10.0/24, fd00:198:10::/64)
    node-c  198.18.10.13  ─┤
    router  198.18.10.1   ─┘── 198.18.20.1 ── node-d 198.18.20.14 (another underlay subnet)

Every node is a namespace with `eth0` on its underlay; `netc apply --node`
(the command line, inside the node's namespace) sets up its part of the
cluster, and each node gets one pod through netc-cni from its own conflist
(`netc build --target netc --node`), with state and data directories of its
own, as real nodes share no disk.  Each pod answers on TCP port 80 (netprobe:
its tag and the source address it saw), mapped to host port 8080 on its
node.  The client is the outside world: it has no route to the pod CIDRs, so
a pod's traffic that reaches it and gets an answer was masqueraded.

Names carry the lab's random prefix; `close()` deletes every namespace.
198.18.0.0/15 is the benchmarking range, never routed anywhere.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.cluster import vtep_mac
from compiler.ir import Node
from compiler.pipeline import Compilation, compile_sources
from compiler.planner.context import mapping_from_option
from compiler.source import SourceFile
from runtime import driver
from tests.kernel.lab import Namespaces, Pod, sh

CLIENT = "198.18.10.100"
CLIENT6 = "fd00:198:10::100"
HOST_PORT = 8080
POD_PORT = 80
UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = {4: 50, 6: 70}
"""Outer IP, UDP, VXLAN and inner Ethernet headers, by the underlay's family."""
CLUSTER = "sim"


@dataclass(frozen=True)
class SimNode:
    """A node of the simulated cluster: its name, underlay ("a": the switch, "b": behind
    the router), host number on it and pod block."""

    name: str
    underlay: str
    host: int
    block: int

    @property
    def address(self) -> str:
        return f"198.18.{10 if self.underlay == 'a' else 20}.{self.host}"

    @property
    def address6(self) -> str:
        return f"fd00:198:{10 if self.underlay == 'a' else 20}::{self.host}"

    def subnet(self, family: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if family == 4:
            return ipaddress.ip_network(f"10.244.{self.block}.0/24")
        return ipaddress.ip_network(f"fd00:10:244:{self.block:x}::/64")


NODE_A = SimNode("node-a", "a", 11, 1)
NODE_B = SimNode("node-b", "a", 12, 2)
NODE_C = SimNode("node-c", "a", 13, 3)
NODE_D = SimNode("node-d", "b", 14, 4)
NODE_E = SimNode("node-e", "a", 15, 9)


@dataclass
class SimPod:
    """A pod on a node, with the addresses netc-cni gave it."""

    node: SimNode
    pod: Pod
    addresses: dict[int, str] = field(default_factory=dict)


class SimCluster(Namespaces):
    """The namespaces, the cluster's source and its nodes; see the module docstring."""

    def __init__(
        self,
        tmp: Path,
        bin_dir: Path,
        mode: str,
        dual: bool,
        nodes: tuple[SimNode, ...],
        *,
        ipv6_underlay: bool = False,
        target: str = "netc",
    ) -> None:
        super().__init__(tmp)
        self.bin_dir = bin_dir
        self.mode = mode
        self.target = target
        """What the pods' conflists are built for: netc-cni, or the stock plugins."""
        self.dual = dual
        self.families = (4, 6) if dual else (4,)
        self.ipv6_underlay = ipv6_underlay
        """The source gives the nodes IPv6 underlay addresses only: VXLAN travels in IPv6."""
        self.vni = 1
        self.nodes: dict[str, SimNode] = {}
        self.pods: dict[str, SimPod] = {}
        self.listed = list(nodes)
        """The nodes the source lists (a node removed from the source keeps its namespace)."""
        self.router: str | None = None
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            self._build()
        except BaseException:
            self.close()  # a half-built cluster leaves no namespace behind either
            raise

    def _build(self) -> None:
        self.switch = self.netns("switch")
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        self.client = self.netns("client")
        self._plug(self.client, "cl", CLIENT, CLIENT6, routed=False)
        if any(n.underlay == "b" for n in self.listed):
            self._router()
        for node in self.listed:
            self.add_node(node)

    # topology

    def ns(self, node: SimNode | str) -> str:
        """The namespace of a node."""
        return f"{self.tag}-{node if isinstance(node, str) else node.name}"

    def _plug(self, netns: str, port: str, address: str, address6: str, routed: bool) -> None:
        """`eth0` of a namespace on the switch, with its addresses; `routed`: default routes
        through the router."""
        sh(
            "ip",
            "-n",
            self.switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns,
        )
        sh("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        self._address(netns, "eth0", address, address6)
        if routed:
            sh("ip", "-n", netns, "route", "add", "default", "via", "198.18.10.1")
            sh("ip", "-n", netns, "-6", "route", "add", "default", "via", "fd00:198:10::1")

    def add_host(self, role: str, host: int) -> str:
        """A namespace on the switch at 198.18.10.HOST (and fd00:198:10::HOST), routed like a
        node: a service between the nodes (an etcd member)."""
        netns = self.netns(role)
        self._plug(
            netns,
            role[-15:],
            f"198.18.10.{host}",
            f"fd00:198:10::{host}",
            routed=self.router is not None,
        )
        return netns

    def _address(self, netns: str, dev: str, address: str, address6: str) -> None:
        self.run(netns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0")
        sh("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", dev)
        sh("ip", "-n", netns, "addr", "add", f"{address6}/64", "dev", dev, "nodad")
        sh("ip", "-n", netns, "link", "set", dev, "up")

    def _router(self) -> None:
        self.router = self.netns("router")
        self._plug(self.router, "rt", "198.18.10.1", "fd00:198:10::1", routed=False)
        # the client reaches node-d's underlay through the router, never the pod CIDRs
        sh("ip", "-n", self.client, "route", "add", "198.18.20.0/24", "via", "198.18.10.1")
        sh(
            "ip",
            "-n",
            self.client,
            "-6",
            "route",
            "add",
            "fd00:198:20::/64",
            "via",
            "fd00:198:10::1",
        )
        self.run(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run(self.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def add_node(self, node: SimNode) -> None:
        """The node's namespace, on its underlay (not yet in the source)."""
        netns = self.netns(node.name)
        if node.underlay == "a":
            self._plug(netns, node.name, node.address, node.address6, routed=True)
        else:
            assert self.router is not None
            sh(
                "ip",
                "-n",
                self.router,
                "link",
                "add",
                "eth1",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns,
            )
            self._address(self.router, "eth1", "198.18.20.1", "fd00:198:20::1")
            self._address(netns, "eth0", node.address, node.address6)
            sh("ip", "-n", netns, "route", "add", "default", "via", "198.18.20.1")
            sh("ip", "-n", netns, "-6", "route", "add", "default", "via", "fd00:198:20::1")
        self.nodes[node.name] = node

    @property
    def pod_mtu(self) -> int:
        """The MTU a pod gets when some peers are tunnelled."""
        return UNDERLAY_MTU - VXLAN_OVERHEAD[6 if self.ipv6_underlay else 4]

    # the source and what is built from it

    def source(self) -> str:
        """The cluster's .netdsl, {state} and {data} standing for a node's directories."""
        cidrs = "10.244.0.0/16, fd00:10:244::/56" if self.dual else "10.244.0.0/16"
        blocks = "/24, /64" if self.dual else "/24"
        nodes = "".join(
            f"    node {n.name} {{\n        address "
            + (f"{n.address6}/64" if self.ipv6_underlay else f"{n.address}/24")
            + (f", {n.address6}/64" if self.dual and not self.ipv6_underlay else "")
            + f"\n        block {n.block}\n    }}\n"
            for n in self.listed
        )
        routes = "route 0.0.0.0/0" + ("; route ::/0" if self.dual else "")
        tunnel = (
            ""
            if self.mode == "host-gw"  # host-gw has no tunnel to set (E610)
            else f" {{ vni {self.vni}; underlay-mtu {UNDERLAY_MTU} }}"
        )
        return (
            f"cluster {CLUSTER} {{\n    pod-cidr {cidrs}\n    node-block {blocks}\n"
            f"    routing {self.mode}{tunnel}\n"
            f"{nodes}}}\n\n"
            'network pods {\n    state-dir "{state}"\n'
            "    bridge cni0 { gateway; masquerade }\n"
            f'    ipam {{ cluster {CLUSTER}; data-dir "{{data}}"; {routes} }}\n'
            "    hostport\n}\n"
        )

    def source_file(self, node: SimNode) -> Path:
        """The source as the node sees it (its own directories), written for the CLI."""
        directory = self.tmp / node.name
        directory.mkdir(exist_ok=True)
        text = (
            self.source()
            .replace("{state}", str(directory / "state"))
            .replace("{data}", str(directory / "ipam"))
        )
        path = directory / "cluster.netdsl"
        path.write_text(text)
        return path

    def compiled(self, node: SimNode) -> Compilation:
        """The source as the node sees it, compiled."""
        path = self.source_file(node)
        compilation = compile_sources([SourceFile(str(path), path.read_text())])
        assert compilation.ok, compilation.diagnostics
        return compilation

    def conflist(self, node: SimNode) -> str:
        """The node's conflist: `netc build --target TARGET --node NAME`."""
        done = self.netc(
            "build", "--target", self.target, "--node", node.name, str(self.source_file(node))
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def conflists(self, nodes: list[SimNode]) -> dict[str, str]:
        """Several nodes' conflists, built concurrently, by node name."""
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            return dict(zip([n.name for n in nodes], pool.map(self.conflist, nodes), strict=True))

    def mac(self, node: SimNode) -> str:
        """The MAC of a node's VXLAN device (derived from cluster and node names)."""
        (cluster,) = self.compiled(self.listed[0]).clusters
        return vtep_mac(cluster, Node(node.name, (), ()))

    # netc on the nodes

    def netc(self, *arguments: str) -> subprocess.CompletedProcess:
        """The netc command line."""
        return subprocess.run(
            [sys.executable, "-m", "runtime.cli", *arguments],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def apply(self, node: SimNode, *extra: str) -> subprocess.CompletedProcess:
        """`netc apply --node` inside the node, exit codes detailed (0 nothing, 2 changes)."""
        return self.netc(
            "apply",
            str(self.source_file(node)),
            "--node",
            node.name,
            "--node-netns",
            self.ns(node),
            "--detailed-exitcode",
            *extra,
        )

    def apply_all(
        self, nodes: list[SimNode] | None = None
    ) -> dict[str, subprocess.CompletedProcess]:
        """`netc apply` on several nodes at once (they share nothing); each must succeed."""
        chosen = nodes if nodes is not None else self.listed
        with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            done = dict(zip([n.name for n in chosen], pool.map(self.apply, chosen), strict=True))
        for name, result in done.items():
            assert result.returncode in (0, 2), f"apply on {name}: {result.stderr}"
        return done

    def plan_live(self, node: SimNode) -> subprocess.CompletedProcess:
        """`netc plan --live --node ... --detailed-exitcode --format json` against the node."""
        return self.netc(
            "plan",
            str(self.source_file(node)),
            "--node",
            node.name,
            "--live",
            "--node-netns",
            self.ns(node),
            "--detailed-exitcode",
            "--format",
            "json",
        )

    @staticmethod
    def pending(
        done: subprocess.CompletedProcess, states: tuple[str, ...] = ("create", "different")
    ) -> list[str]:
        """What a live plan says needs doing (or, given `states`, what is in those): each
        operation's summary and live detail."""
        return [
            f"{op['summary']}: {op['live']['state']} {op['live']['detail'] or ''}".strip()
            for op in json.loads(done.stdout)["operations"]
            if op["live"]["state"] in states
        ]

    # pods

    def add_pod(self, node: SimNode, role: str = "pod", host_port: int = HOST_PORT) -> SimPod:
        """A pod on the node through its conflist, answering on port 80 (host port 8080).

        `role` names the pod's namespace and `host_port` its mapping: a second pod
        on a node needs others.
        The node's latest pod is `pods[node.name]`.
        """
        path = self.tmp / node.name / "pods.conflist"
        path.write_text(self.conflist(node))
        pod = Pod(
            self.netns(f"{node.name}-{role}"), f"{self.tag}-{node.name}-{secrets.token_hex(4)}"
        )
        who = driver.Invocation(
            pod.container_id,
            pod.netns,
            "eth0",
            "",
            (mapping_from_option(f"{host_port}:{POD_PORT}"),),
            None,
            (str(self.bin_dir), "/usr/lib/cni"),
            str(self.tmp / node.name / "cache"),
            self.ns(node),
        )
        result = driver.add(driver.Conflist(path.read_bytes()), who)
        found = SimPod(
            node,
            pod,
            {
                ipaddress.ip_interface(ip["address"]).version: str(
                    ipaddress.ip_interface(ip["address"]).ip
                )
                for ip in result["ips"]
            },
        )
        self.serve(pod.name, "tcp", POD_PORT, node.name)
        self.pods[node.name] = found
        return found

    def add_pods(self, nodes: list[SimNode]) -> None:
        """A pod on each node, concurrently."""
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            list(pool.map(self.add_pod, nodes))

    def ask_all(self, questions: list[tuple[str, str, int]]) -> list[str | None]:
        """netprobe questions (namespace, host, TCP port), asked concurrently, answers in order."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda q: self.ask(q[0], "tcp", q[1], q[2]), questions))

    # what the kernel of a node has, read with iproute2 (not netc's own code)

    def ip_json(self, node: SimNode, *command: str) -> list[dict[str, Any]]:
        """`ip -j ...` inside a node."""
        return json.loads(sh("ip", "-j", "-n", self.ns(node), *command).stdout or "[]")

    def fdb(self, node: SimNode) -> list[dict[str, Any]]:
        """The forwarding entries of the node's VXLAN device (none without one)."""
        if not any(link["ifname"] == "netc.1" for link in self.ip_json(node, "link", "show")):
            return []
        done = sh("bridge", "-n", self.ns(node), "-j", "fdb", "show", "dev", "netc.1")
        return json.loads(done.stdout or "[]")

    def routes(self, node: SimNode) -> list[dict[str, Any]]:
        """Every route of the main table, both families."""
        return [
            *self.ip_json(node, "-4", "route", "show"),
            *self.ip_json(node, "-6", "route", "show"),
        ]
