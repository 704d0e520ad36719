"""A simulated cluster whose members are Kubernetes Nodes: the tests' API server on the
underlay, an agent per node reading it with a kubeconfig, as one running outside a pod would.

The test plays the control plane: it registers each node's Node (as the kubelet does) with
the podCIDR kube-controller-manager would assign, `10.244.BLOCK.0/24`, and the node's
underlay address as its InternalIP, and deletes Nodes as an admin does.  The agents are
given no --node-address: each finds its InternalIP on its node's interface.
"""

from __future__ import annotations

from tests.cluster.sim import SimNode
from tests.membership.agents import AgentCluster
from tests.membership.apiserver import ApiServer
from tests.membership.nodes import node_object


class KubeAgentCluster(AgentCluster):
    """The simulated cluster, the API server, and an agent per node that has joined."""

    api: ApiServer

    def start_datastore(self) -> None:
        self.api = ApiServer(
            self.add_host("apiserver", 201), "198.18.10.201", self.tmp / "api", bookmark_every=1.0
        )

    def close(self) -> None:
        if hasattr(self, "api"):
            self.api.stop()
        super().close()

    def membership(self) -> str:
        return "    membership kubernetes\n"

    def agent_options(self, node: SimNode) -> list[str]:
        return ["--kubeconfig", str(self.api.kubeconfig(self.tmp / "kubeconfig"))]

    def register(self, node: SimNode, pod_cidr: str | None = "auto") -> None:
        """The node's Node, as the kubelet registers it, with the podCIDR it is assigned."""
        cidrs = (
            [f"10.244.{node.block}.0/24"]
            if pod_cidr == "auto"
            else ([pod_cidr] if pod_cidr else None)
        )
        self.api.add_node(node_object(node.name, cidrs, [node.address]))

    def subnet(self, node: SimNode) -> str:
        return f"10.244.{node.block}.0/24"
