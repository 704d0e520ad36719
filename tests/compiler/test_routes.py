"""Routes given to pods: a `via` must be reachable from every pod, or every ADD fails."""

from __future__ import annotations

import pytest

from compiler.pipeline import compile_sources
from compiler.source import SourceFile

NETWORK = """network pods {{
    bridge cni0 {{ gateway }}
    ipam {{
        subnet 10.244.1.0/24
        subnet 10.244.2.0/24
        subnet fd00:10:244:1::/64
        route {route}
    }}
}}
"""


@pytest.mark.parametrize(
    ("route", "codes"),
    [
        ("0.0.0.0/0 via 10.244.1.254", []),
        ("0.0.0.0/0 via 10.244.2.1", []),  # in one subnet of the family's range set
        ("0.0.0.0/0 via 10.99.0.1", ["E206"]),
        ("::/0 via fd00:10:244:1::fe", []),
        ("::/0 via fd00:99::1", ["E206"]),
        ("::/0 via fe80::1", []),  # link-local: on every IPv6 link
    ],
)
def test_a_next_hop_outside_every_subnet_of_its_family_is_refused(route, codes):
    text = NETWORK.format(route=route)
    compilation = compile_sources([SourceFile("r.netdsl", text)])
    assert [d.code for d in compilation.diagnostics] == codes
