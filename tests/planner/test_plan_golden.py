"""Golden plans: every bridge network of the examples, planned for one standard pod,
and every node of the cluster example, planned for its node-scoped operations."""

import pytest

from compiler.cluster import cluster_of, networks_for_node
from compiler.datatypes import replace
from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from compiler.planner.node import node_plan
from compiler.planner.plan import plan
from compiler.planner.render import render_json, render_text
from tests.support import EXAMPLE_SETS, compile_example

POD = PodContext(
    container_id="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ifname="eth0",
    netns="/run/netns/web",
    namespace="default",
    pod_name="web",
    port_mappings=(PortMapping(30080, 80), PortMapping(30053, 53, "udp")),
    bandwidth=BandwidthRequest(
        ingress_rate=20_000_000, egress_rate=10_000_000, ingress_burst=2**32 - 1
    ),
)


def _bridge_networks():
    """Each bridge network; one of a cluster as its first node runs it."""
    for name in sorted(EXAMPLE_SETS):
        compilation, sources = compile_example(name)
        for compiled in compilation.networks:
            cluster = cluster_of(compiled, compilation.clusters)
            (network,) = (
                networks_for_node([compiled], compilation.clusters, cluster.nodes[0].name)
                if cluster
                else (compiled,)
            )
            if network.bridge is not None and not network.chain:  # netc-cni chains nothing
                yield pytest.param(name, network, sources, id=f"{name}-{network.name}")


def _pod_for(network) -> PodContext:
    """The standard pod, without what the network does not support."""
    pod = POD
    if network.hostport is None:
        pod = replace(pod, port_mappings=())
    if network.bandwidth is None:
        pod = replace(pod, bandwidth=BandwidthRequest())
    return pod


@pytest.mark.parametrize(("example", "network", "sources"), list(_bridge_networks()))
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_plan_matches_its_golden_file(golden, example, network, sources, command):
    the_plan = plan(network, _pod_for(network), command)
    stem = f"plan/{example}/{network.name}.{command.lower()}"
    golden.check(f"golden/{stem}.txt", render_text(the_plan, sources))
    golden.check(f"golden/{stem}.json", render_json(the_plan))


CLUSTER, CLUSTER_SOURCES = compile_example("cluster")


@pytest.mark.parametrize("node", [n.name for c in CLUSTER.clusters for n in c.nodes])
def test_node_plans_match_their_golden_files(golden, node):
    (cluster,) = CLUSTER.clusters
    the_plan = node_plan(cluster, node, networks_for_node(CLUSTER.networks, CLUSTER.clusters, node))
    golden.check(f"golden/plan/cluster/{node}.apply.txt", render_text(the_plan, CLUSTER_SOURCES))
    golden.check(f"golden/plan/cluster/{node}.apply.json", render_json(the_plan))
