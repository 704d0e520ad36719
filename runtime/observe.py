"""`netc plan --live`: each planned operation compared with a node's kernel, read-only.

The comparison is the one CHECK makes (the handlers' `observe`), run from
the CLI inside the node's network namespace.  Values bound at ADD time (the
pod's addresses) come from the attachment's record when there is one.
"""

from __future__ import annotations

import os

from compiler.ir import Network
from compiler.planner.context import PodContext
from compiler.planner.names import record_path
from compiler.planner.ops import Observation, Plan
from runtime import attachment_records as records
from runtime import executor
from runtime.host import Host
from runtime.netns import node_namespace


def observe_plan(
    network: Network, the_plan: Plan, pod: PodContext, node_netns: str
) -> list[Observation]:
    """One observation per operation of `the_plan`, seen from namespace `node_netns`.

    `node_netns` is a name under /run/netns or a path.
    """
    with node_namespace(node_netns):
        state = record_path(network.state_dir, network.name, pod.container_id, pod.ifname)
        previous = records.load(state)
        sandbox = pod.netns if pod.netns and os.path.exists(pod.netns) else None
        host = Host(sandbox)
        try:
            run = executor.Run(
                host, the_plan, pod, previous or records.Record(state, pod), previous
            )
            return executor.observe(run)
        finally:
            host.close()
