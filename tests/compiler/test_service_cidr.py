"""Pod CIDRs and the cluster's Service CIDR: a pod address must never be a Service's."""

from __future__ import annotations

import pytest

from compiler.pipeline import compile_sources
from compiler.source import SourceFile

CLUSTER = """cluster prod {{
    pod-cidr {pods}
    {services}
    node node-a {{
        address 192.168.1.11/24, fd00:1::11/64
        block 1
    }}
}}
"""


def codes(pods: str, services: str = "") -> list[str]:
    text = CLUSTER.format(pods=pods, services=services)
    return [d.code for d in compile_sources([SourceFile("c.netdsl", text)]).diagnostics]


@pytest.mark.parametrize(
    ("pods", "services", "expected"),
    [
        ("10.244.0.0/16", "", []),  # kubeadm's defaults: apart
        ("10.96.0.0/16", "", ["W005"]),  # inside the default /12
        ("10.0.0.0/8", "", ["W005"]),  # around it
        ("10.96.0.0/16", "service-cidr 10.32.0.0/16", []),  # the cluster says where they are
        ("10.32.0.0/16", "service-cidr 10.32.0.0/20", ["E612"]),
        ("10.244.0.0/16, fd00:10::/56", "service-cidr fd00:10:0:1::/108", ["E612"]),
        ("10.244.0.0/16", "service-cidr 10.96.0.0/12, 10.97.0.0/16", ["E013"]),
    ],
)
def test_pod_cidrs_overlapping_the_service_cidr(pods, services, expected):
    assert codes(pods, services) == expected
