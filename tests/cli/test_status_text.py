"""`netc status` in text: rates as the pods' annotations write them.

The node is not needed to print what was found: the states are made here.
"""

from runtime.cli.node import _status_text
from runtime.inventory import Attachment, NetworkState, Problem


def test_rates_read_as_quantities(golden):
    state = NetworkState(
        "pods",
        attachments=[
            Attachment(
                "a" * 64,
                "eth0",
                ("10.244.1.10/24",),
                ("8080->80/tcp",),
                {"ingress": 10_000_000, "egress": 1_500_000},
                "/run/netns/a",
                0.0,
            ),
            Attachment(
                "b" * 64,
                "eth0",
                ("10.244.1.11/24",),
                (),
                {"ingress": 1_048_576, "egress": 999},
                "/run/netns/b",
                0.0,
            ),
        ],
        problems=[
            Problem(
                "record without namespace", "c" * 12, "/run/netns/c is gone", "netc gc runs the DEL"
            )
        ],
    )
    golden.check("golden/status/rates.txt", _status_text([state]))
