"""flannel on the simulated nodes, made by hand as flannel makes it, and netc taking over.

What flanneld (vxlan backend, `--ip-masq`, flannel's defaults) leaves on a
node, made here with iproute2 and iptables-restore:

    flannel.1    VXLAN 1, UDP 8472, local = the node's underlay address, on
                 eth0, no learning, MTU 1450, the node's VTEP address
                 10.244.N.0/32; per peer a route onlink through its VTEP
                 address, a permanent neighbour entry and an FDB entry
    iptables     FLANNEL-POSTRTG (nat; masquerade what leaves the pod network)
                 and FLANNEL-FWD (filter; forward the pod network)
    subnet.env   /run/flannel/subnet.env: the network, the node's subnet, MTU

and what flannel's CNI plugin does for a pod: it reads subnet.env and runs
the stock bridge plugin with a configuration of its own making (`delegate`
below: cni0, the node's subnet from host-local, routes to the pod network).
The stock bridge plugin is the one flannel runs, so the pods made here are
pods as flannel attaches them.  No flannel binary is needed: flanneld's part
is the kernel state above, which a test can make exactly.

`FlannelCluster` is a simulated cluster whose netc source is the one
docs/migrating-from-flannel.md arrives at: flannel's network `cbr0`
imported, its plugin replaced by netc's bridge, and a cluster block giving
each node the subnet flannel gave it.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from pathlib import Path
from typing import Any

from runtime import driver
from tests.cluster.sim import CLUSTER, POD_PORT, SimCluster, SimNode, sh
from tests.kernel.lab import Pod

NETWORK = "10.244.0.0/16"
MTU = 1450
FLANNEL_CONFLIST = {
    "name": "cbr0",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
"""kube-flannel.yml's cni-conf.json, which its init container copies to 10-flannel.conflist."""
STOCK_PLUGINS = "/usr/lib/cni"
KUBE_PROXY_MARK = "0x4000/0x4000"


def subnet_env(node: SimNode) -> str:
    """/run/flannel/subnet.env as flanneld writes it for the node (with --ip-masq)."""
    return (
        f"FLANNEL_NETWORK={NETWORK}\nFLANNEL_SUBNET={node.subnet(4)[1]}/24\n"
        f"FLANNEL_MTU={MTU}\nFLANNEL_IPMASQ=true\n"
    )


def delegate(plugin: dict[str, Any], env: str, data_dir: Path) -> dict[str, Any]:
    """The configuration flannel's CNI plugin runs the bridge plugin with, on a node.

    Its own defaults, as flannel-io/cni-plugin sets them: the bridge plugin,
    masquerade only when flanneld does not, the MTU and the node's subnet from
    subnet.env, the pod network as a route.  `data_dir` keeps host-local's
    reservations out of the host's /var/lib/cni.
    """
    values = dict(line.split("=", 1) for line in env.splitlines())
    config: dict[str, Any] = {"type": "bridge", **plugin["delegate"]}
    config.setdefault("ipMasq", values["FLANNEL_IPMASQ"] != "true")
    config.setdefault("mtu", int(values["FLANNEL_MTU"]))
    config.setdefault("isGateway", True)
    subnet = ipaddress.ip_interface(values["FLANNEL_SUBNET"]).network
    config["ipam"] = {
        "type": "host-local",
        "ranges": [[{"subnet": str(subnet)}]],
        "routes": [{"dst": values["FLANNEL_NETWORK"]}],
        "dataDir": str(data_dir),
    }
    return config


def start_flannel(sim: SimCluster, nodes: list[SimNode]) -> None:
    """flanneld's devices, routes, entries and iptables rules on each node."""
    macs = {}
    for node in nodes:
        ip = ("ip", "-n", sim.ns(node))
        sh(
            *ip,
            "link",
            "add",
            "flannel.1",
            "type",
            "vxlan",
            "id",
            "1",
            "dstport",
            "8472",
            "local",
            node.address,
            "dev",
            "eth0",
            "nolearning",
        )
        sh(*ip, "link", "set", "flannel.1", "mtu", str(MTU))
        sh(*ip, "addr", "add", f"{node.subnet(4).network_address}/32", "dev", "flannel.1")
        sh(*ip, "link", "set", "flannel.1", "up")
        (link,) = sim.ip_json(node, "link", "show", "flannel.1")
        macs[node.name] = link["address"]
        sim.run(sim.ns(node), "iptables-restore", "--noflush", stdin=_rules(node))
    for node in nodes:
        ip = ("ip", "-n", sim.ns(node))
        for peer in (n for n in nodes if n is not node):
            vtep = str(peer.subnet(4).network_address)
            sh(
                *ip,
                "neigh",
                "replace",
                vtep,
                "lladdr",
                macs[peer.name],
                "dev",
                "flannel.1",
                "nud",
                "permanent",
            )
            sh(
                "bridge",
                "-n",
                sim.ns(node),
                "fdb",
                "append",
                macs[peer.name],
                "dev",
                "flannel.1",
                "dst",
                peer.address,
                "self",
                "permanent",
            )
            sh(
                *ip,
                "route",
                "replace",
                str(peer.subnet(4)),
                "via",
                vtep,
                "dev",
                "flannel.1",
                "onlink",
            )


def _rules(node: SimNode) -> str:
    """flanneld's iptables rules for a node (its iptables traffic manager, --ip-masq)."""
    pod = str(node.subnet(4))
    masq = '-m comment --comment "flanneld masq"'
    forward = '-m comment --comment "flanneld forward"'
    return "\n".join(
        [
            "*nat",
            ":FLANNEL-POSTRTG - [0:0]",
            f"-A POSTROUTING {masq} -j FLANNEL-POSTRTG",
            f"-A FLANNEL-POSTRTG -m mark --mark {KUBE_PROXY_MARK} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {pod} -d {NETWORK} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {NETWORK} -d {pod} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG ! -s {NETWORK} -d {pod} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {NETWORK} ! -d 224.0.0.0/4 {masq} -j MASQUERADE --random-fully",
            f"-A FLANNEL-POSTRTG ! -s {NETWORK} -d {NETWORK} {masq} -j MASQUERADE --random-fully",
            "COMMIT",
            "*filter",
            ":FLANNEL-FWD - [0:0]",
            f"-A FORWARD {forward} -j FLANNEL-FWD",
            f"-A FLANNEL-FWD -s {NETWORK} {forward} -j ACCEPT",
            f"-A FLANNEL-FWD -d {NETWORK} {forward} -j ACCEPT",
            "COMMIT",
            "",
        ]
    )


class FlannelCluster(SimCluster):
    """A simulated cluster that ran flannel, with the netc source the migration guide gives.

    Pods attached by flannel are `flannel_pods`; those netc-cni attaches are
    `pods`, as in every simulated cluster.
    """

    def __init__(self, tmp: Path, bin_dir: Path, nodes: tuple[SimNode, ...]) -> None:
        super().__init__(tmp, bin_dir, "vxlan", False, nodes)
        self.flannel_pods: dict[str, tuple[Pod, str]] = {}

    def source(self) -> str:
        """flannel's network as netc runs it: the guide's cluster block and network."""
        nodes = "".join(
            f"    node {n.name} {{\n        address {n.address}/24\n"
            f"        subnet {n.subnet(4)}\n    }}\n"
            for n in self.listed
        )
        return (
            f"cluster {CLUSTER} {{\n    pod-cidr {NETWORK}\n    routing vxlan\n{nodes}}}\n\n"
            'network cbr0 {\n    cni 0.3.1\n    priority 10\n    state-dir "{state}"\n'
            "    bridge cni0 { gateway; masquerade; hairpin }\n"
            f'    ipam {{ cluster {CLUSTER}; data-dir "{{data}}"; route 0.0.0.0/0 }}\n'
            "    hostport\n}\n"
        )

    def flannel_invocation(self, node: SimNode, pod: Pod) -> driver.Invocation:
        """How the runtime calls the node's CNI plugins for a pod: the node's result cache."""
        return driver.Invocation(
            pod.container_id,
            pod.netns,
            "eth0",
            "",
            (),
            None,
            (str(self.bin_dir), STOCK_PLUGINS),
            str(self.tmp / node.name / "cache"),
            self.ns(node),
        )

    def add_flannel_pod(self, node: SimNode) -> str:
        """A pod attached as flannel's plugin attaches it, answering on port 80; its address."""
        directory = self.tmp / node.name
        directory.mkdir(exist_ok=True)
        config = delegate(FLANNEL_CONFLIST["plugins"][0], subnet_env(node), directory / "ipam")
        conflist = {
            "cniVersion": FLANNEL_CONFLIST["cniVersion"],
            "name": FLANNEL_CONFLIST["name"],
            "plugins": [config],
        }
        pod = Pod(
            self.netns(f"{node.name}-flannel"), f"{self.tag}-{node.name}-{secrets.token_hex(4)}"
        )
        result = driver.add(
            driver.Conflist(json.dumps(conflist).encode()), self.flannel_invocation(node, pod)
        )
        (address,) = [str(ipaddress.ip_interface(ip["address"]).ip) for ip in result["ips"]]
        self.serve(pod.name, "tcp", POD_PORT, f"{node.name}-flannel")
        self.flannel_pods[node.name] = (pod, address)
        return address
