"""Keys netdsl does not model, written as they are: `conflist { ... }`, `chain portmap`.

What `netc import` keeps this way must build back exactly,
for both targets where the target writes a conflist's top level.
"""

import pytest

from compiler import emit
from compiler.pipeline import compile_sources
from compiler.source import SourceFile

SOURCE = """
network pods {
    conflist { disableCheck true; vendor { level [1, "two"] } }
    bridge cni0
    ipam { subnet 10.244.1.0/24 }
    chain portmap { capabilities { portMappings true }; markMasqBit 13 }
    chain bandwidth { ingressRate 1000000; ingressBurst 16384 }
}
"""


def _network():
    compilation = compile_sources([SourceFile("pods.netdsl", SOURCE)])
    assert compilation.ok, compilation.diagnostics
    (network,) = compilation.networks
    return network


@pytest.mark.parametrize("target", ["reference", "netc"])
def test_conflist_keys_are_written_at_the_top_as_they_are(target):
    document = emit.conflist(_network(), target)
    assert list(document) == ["cniVersion", "name", "disableCheck", "vendor", "plugins"]
    assert document["disableCheck"] is True
    assert document["vendor"] == {"level": [1, "two"]}


@pytest.mark.parametrize("target", ["reference", "netc"])
def test_chained_portmap_and_bandwidth_are_written_as_they_are(target):
    """After the main plugin -- the bridge, or netc-cni -- in order, as written."""
    plugins = emit.conflist(_network(), target)["plugins"]
    assert plugins[0]["type"] == {"reference": "bridge", "netc": "netc-cni"}[target]
    assert plugins[1:] == [
        {"type": "portmap", "capabilities": {"portMappings": True}, "markMasqBit": 13},
        {"type": "bandwidth", "ingressRate": 1000000, "ingressBurst": 16384},
    ]
