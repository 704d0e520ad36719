"""A large, valid `.netdsl` file for timing `netc build` and `netc check`.

The compiler's cost is not only per line: templates are merged into every
network, and names, bridges and subnets are checked for uniqueness across all
networks.  So the file is made of many complete networks -- each with its own
bridge and dual-stack subnets, using a chain of templates, with hostPort and
bandwidth policies -- rather than one network padded with comments.
"""

from __future__ import annotations

TEMPLATES = """\
# Settings every network of the generated cluster shares.
template cluster {
    cni 1.0.0
    hostport {
        deny 22, 2379..2380, 10250
    }
    bandwidth {
        max ingress 1G egress 1G
    }
}

template bridged {
    use cluster
    bridge {
        mtu 1450
        gateway
        masquerade
    }
}

template resolver {
    ipam {
        dns {
            nameservers 10.96.0.10
            search default.svc.cluster.local, svc.cluster.local, cluster.local
            options ndots:5
        }
    }
}

"""

NETWORK = """\
# Network {index}: pods of rack {rack}, slot {slot}.
network gen-{index} {{
    use bridged, resolver
    bridge br-g{index} {{
        hairpin
    }}
    ipam {{
        subnet 10.{high}.{low}.0/24 {{
            range 10.{high}.{low}.10 .. 10.{high}.{low}.250
        }}
        subnet fd00:{index:x}::/64
        route 0.0.0.0/0
        route ::/0
    }}
    hostport {{
        allow 30000..32767, {port}
        deny 30022
    }}
    bandwidth {{
        default ingress 100M egress 50M
        namespace batch-{index}, jobs {{
            default ingress 10M egress 10M
            max ingress 100M egress 50M
        }}
    }}
}}

"""

MAX_NETWORKS = 256 * 200
"""Subnets are 10.(1..200).x.0/24: enough for ~1.3 million lines."""


def network(index: int) -> str:
    """Network `index`: its own name, bridge, subnets and allowed port."""
    return NETWORK.format(
        index=index,
        rack=index // 40,
        slot=index % 40,
        high=1 + index // 256,
        low=index % 256,
        port=8000 + index % 1000,
    )


def netdsl(lines: int) -> tuple[str, int]:
    """About `lines` lines (exactly, when there is room for the templates): text and networks.

    Whole networks are added while they fit; comment lines fill the rest, so
    the file has the line count asked for and stays valid.
    """
    parts = [TEMPLATES]
    used = TEMPLATES.count("\n")
    count = 0
    while count < MAX_NETWORKS:
        block = network(count)
        if used + block.count("\n") > lines:
            break
        parts.append(block)
        used += block.count("\n")
        count += 1
    parts.append("# padding\n" * max(0, lines - used))
    return "".join(parts), count


CLUSTER_POD_CIDR = "10.0.0.0/8"
"""65,536 node blocks of /24; the underlay, 172.16.0.0/16, is outside it."""


def underlay_address(index: int) -> str:
    """Node `index`'s address on the one underlay subnet every node shares (host-gw)."""
    return f"172.16.{index // 250}.{index % 250 + 1}"


def cluster(nodes: int, state_dir: str) -> str:
    """A host-gw cluster of `nodes` nodes (node-0000 ...) and a bridge network drawing from it.

    Every node is a complete `node` block -- underlay address and recorded
    block -- as an admin would write it; the network's state and data go to
    `state_dir`.
    """
    body = "".join(
        f"    node node-{index:04d} {{\n        address {underlay_address(index)}/16\n"
        f"        block {index}\n    }}\n"
        for index in range(nodes)
    )
    return (
        f"# A {nodes}-node cluster, host-gw: one route per peer on every node.\n"
        f"cluster big {{\n    pod-cidr {CLUSTER_POD_CIDR}\n    node-block /24\n"
        f"    routing host-gw\n{body}}}\n\nnetwork pods {{\n"
        f'    state-dir "{state_dir}/state"\n'
        "    bridge cni0 {\n        gateway\n        masquerade\n    }\n"
        f'    ipam {{\n        cluster big\n        data-dir "{state_dir}/ipam"\n'
        "        route 0.0.0.0/0\n    }\n    hostport\n}\n"
    )
