"""iptables rules as data: the restore text netc writes, and values it refuses to write.

Every value from a caller that reaches a rule -- a hostIP, a protocol, an
interface name in a comment, a container ID -- goes through `rule()` at plan
time and through `restore_lines` again when the text is written, so a
payload aimed at iptables-restore's line syntax never becomes a command.
"""

import pytest

from compiler.errors import Code
from compiler.pipeline import compile_sources
from compiler.planner import iptables
from compiler.planner.attach import node_operations
from compiler.planner.context import ContextError, PodContext, PortMapping, host_address
from compiler.planner.ops import has_params
from compiler.planner.params import IptablesAttachmentParams, IptablesNodeParams
from compiler.planner.plan import plan
from compiler.source import SourceFile

SOURCE = """
network pods {
    bridge cni0 { gateway; masquerade }
    ipam { subnet 10.1.0.0/24; subnet fd00:1::/64 }
    hostport { }
}
"""
(NETWORK,) = compile_sources([SourceFile("t.netdsl", SOURCE)]).networks

PAYLOADS = [
    "x\nCOMMIT\n*filter\n-I INPUT 1 -j DROP",
    'x" -j ACCEPT "',
    "x' -j ACCEPT",
    "x\\",
    "x\rCOMMIT",
    "\x00",
]


def test_the_restore_text_of_a_pod_s_chain():
    mapping = PortMapping(8080, 80)
    (dnat,) = [
        op
        for op in plan(NETWORK, PodContext("c1", port_mappings=(mapping,)), "ADD").operations
        if has_params(op, IptablesAttachmentParams) and op.params.family == 4
    ]
    lines = iptables.attachment_setup(dnat.params, iptables.FRESH, repeated=False)
    assert lines[0] == f":{dnat.params.chain} - [0:0]"
    assert lines[1] == (
        f"-A {dnat.params.chain} -p tcp -m tcp --dport 8080 -m comment "
        '--comment "netc pods c1 eth0" -j DNAT --to-destination {ipv4.ip}:80'
    )
    assert lines[2].startswith(f"-A {dnat.params.dispatch} -m comment")
    text = iptables.restore_text("nat", lines)
    assert text.startswith("*nat\n") and text.endswith("\nCOMMIT\n")


def test_a_repeated_add_asks_the_node_before_adding_the_jump_again():
    class Present:
        def chain_exists(self, family, table, chain):
            return True

        def has_rule(self, family, table, chain, arguments):
            return True

    (dnat,) = [
        op
        for op in plan(
            NETWORK, PodContext("c1", port_mappings=(PortMapping(1, 2),)), "ADD"
        ).operations
        if has_params(op, IptablesAttachmentParams) and op.params.family == 4
    ]
    assert len(iptables.attachment_setup(dnat.params, Present(), repeated=True)) == 2
    assert len(iptables.attachment_setup(dnat.params, Present(), repeated=False)) == 3
    assert iptables.attachment_teardown(dnat.params, Present())[1].startswith("-D ")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_argument_can_break_out_of_its_line(payload):
    with pytest.raises(iptables.UnsafeRule) as refused:
        iptables.rule("-s", payload)
    assert refused.value.code == Code.BAD_CONFIG
    with pytest.raises(iptables.UnsafeRule):
        iptables.line("-A", "CHAIN", ("-s", payload))
    with pytest.raises(iptables.UnsafeRule):
        iptables.comment(payload)


def test_comments_keep_spaces_inside_quotes_and_have_a_length_limit():
    assert (
        iptables.line("-A", "C", iptables.comment("netc pods c1 eth0"))
        == '-A C -m comment --comment "netc pods c1 eth0"'
    )
    with pytest.raises(iptables.UnsafeRule):
        iptables.comment("x" * 256)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_pod_s_interface_name_cannot_inject_through_its_comment(payload):
    with pytest.raises(iptables.UnsafeRule):
        plan(NETWORK, PodContext("c1", f"e{payload}", port_mappings=(PortMapping(1, 2),)), "ADD")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_protocol_cannot_inject_even_on_del(payload):
    pod = PodContext("c1", port_mappings=(PortMapping(1, 2, f"tcp{payload}"),))
    with pytest.raises(iptables.UnsafeRule):
        plan(NETWORK, pod, "DEL")


@pytest.mark.parametrize(
    "host_ip",
    ["fe80::1%lo", "fe80::1%lo -j RETURN\nCOMMIT\n", "10.0.0.1 -j ACCEPT", 5, True, ["10.0.0.1"]],
)
def test_host_ips_with_scopes_or_of_other_types_are_refused(host_ip):
    with pytest.raises(ContextError) as refused:
        host_address(host_ip)
    assert refused.value.code == Code.BAD_CONFIG


def test_unspecified_host_ips_mean_every_address():
    assert host_address("0.0.0.0") is None and host_address("::") is None
    assert str(host_address("198.18.0.1")) == "198.18.0.1"


def test_a_networks_teardown_unjumps_then_flushes_then_deletes_what_is_there():
    class Present:
        def chain_exists(self, family, table, chain):
            return True

        def has_rule(self, family, table, chain, arguments):
            return chain != "OUTPUT"  # one jump an admin already took away

    (nat,) = [
        op
        for op in node_operations(NETWORK)
        if has_params(op, IptablesNodeParams) and op.params.family == 4 and op.params.table == "nat"
    ]
    assert iptables.node_teardown(nat.params, iptables.FRESH) == []
    lines = iptables.node_teardown(nat.params, Present())
    (masquerade,) = [c.name for c in nat.params.chains]
    (dispatch,) = nat.params.dispatch
    assert [line.split()[:2] for line in lines] == [
        ["-D", "POSTROUTING"],
        ["-D", "PREROUTING"],
        [f":{masquerade}", "-"],
        [f":{dispatch}", "-"],
        ["-X", masquerade],
        ["-X", dispatch],
    ]
