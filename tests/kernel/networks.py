"""The .netdsl networks the kernel tests attach pods to ({state} and {data}: lab dirs)."""

IPV4 = "        subnet 10.77.0.0/24\n        route 0.0.0.0/0"


def bridge_network(
    bridge: str = "gateway; masquerade; hairpin", subnets: str = IPV4, extra: str = ""
) -> str:
    """Network `labnet` on bridge nc-br0: the bridge's settings, the ipam lines, more blocks."""
    return f"""
network labnet {{
    state-dir "{{state}}"
    bridge nc-br0 {{ {bridge} }}
    ipam {{
{subnets}
        data-dir "{{data}}"
    }}
{extra}}}
"""


BRIDGE = bridge_network()
FULL = bridge_network(extra="    hostport\n    bandwidth\n")
DUAL_STACK = bridge_network(
    "gateway; masquerade",
    "        subnet 10.77.0.0/24\n        subnet fd00:77::/64\n"
    "        route 0.0.0.0/0\n        route ::/0",
)
