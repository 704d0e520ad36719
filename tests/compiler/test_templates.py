"""Templates merged into networks with `use`."""

from __future__ import annotations

from compiler.pipeline import compile_sources
from compiler.source import SourceFile

TEMPLATE = """\
template bridged {
    bridge {
        mtu 1450
        masquerade
    }
    hostport {
        deny 22
    }
}
"""


def network(body: str):
    text = TEMPLATE + "network pods {\n    use bridged\n" + body + "}\n"
    compilation = compile_sources([SourceFile("t.netdsl", text)])
    assert compilation.ok, compilation.diagnostics
    (result,) = compilation.networks
    return result


IPAM = "    ipam {\n        subnet 10.244.1.0/24\n    }\n"


def test_a_bridge_without_block_renames_and_keeps_the_template_settings():
    bridge = network("    bridge br-pods\n" + IPAM).bridge
    assert (bridge.name, bridge.mtu, bridge.masquerade) == ("br-pods", 1450, True)


def test_blocks_merge_with_the_network_winning_single_settings():
    bridge = network("    bridge {\n        mtu 9000\n        hairpin\n    }\n" + IPAM).bridge
    assert (bridge.name, bridge.mtu, bridge.masquerade, bridge.hairpin) == (
        "cni0",
        9000,
        True,
        True,
    )


def test_repeatable_settings_accumulate_template_first():
    body = "    bridge\n" + IPAM + "    hostport {\n        deny 80\n    }\n"
    assert [rule.first for rule in network(body).hostport.deny] == [22, 80]


def codes(text: str) -> list[str]:
    return [d.code for d in compile_sources([SourceFile("t.netdsl", text)]).diagnostics]


def test_an_unknown_template_hides_none_of_the_networks_own_mistakes():
    text = "network pods {\n    use missing\n    bridge cni0 { mtu 99 }\n    ipam {}\n}\n"
    assert codes(text) == ["E015", "E013"]


def test_settings_an_unknown_template_would_give_are_not_called_missing():
    """No E012 "no main plugin": the template probably has the bridge."""
    assert codes("network pods {\n    use missing\n}\n") == ["E015"]
    assert codes("network pods {\n}\n") == ["E012"]


def test_a_template_cycle_is_reported_once_and_the_network_is_still_read():
    text = (
        "template a {\n    use b\n}\ntemplate b {\n    use a\n}\n"
        "network pods {\n    use a\n    bridge x:y\n    ipam { subnet 10.0.0.0/24 }\n}\n"
    )
    assert codes(text) == ["E015", "E103"]
