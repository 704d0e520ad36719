"""The .netdsl networks the kernel tests attach pods to."""

BRIDGE = """
network labnet {
    state-dir "{state}"
    bridge nc-br0 {
        gateway
        masquerade
        hairpin
    }
    ipam {
        subnet 10.77.0.0/24
        route 0.0.0.0/0
        data-dir "{data}"
    }
}
"""

FULL = """
network labnet {
    state-dir "{state}"
    bridge nc-br0 {
        gateway
        masquerade
        hairpin
    }
    ipam {
        subnet 10.77.0.0/24
        route 0.0.0.0/0
        data-dir "{data}"
    }
    hostport
    bandwidth
}
"""

DUAL_STACK = """
network labnet {
    state-dir "{state}"
    bridge nc-br0 {
        gateway
        masquerade
    }
    ipam {
        subnet 10.77.0.0/24
        subnet fd00:77::/64
        route 0.0.0.0/0
        route ::/0
        data-dir "{data}"
    }
}
"""
