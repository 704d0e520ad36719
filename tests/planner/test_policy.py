"""Policy resolution: which host ports a pod may map and which rates it gets."""

import ipaddress

import pytest

from compiler.errors import Code
from compiler.pipeline import compile_sources
from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from compiler.planner.policy import (
    PolicyError,
    check_mappings,
    resolve_bandwidth,
)
from compiler.source import SourceFile

SOURCE = """
network pods {
    bridge { gateway }
    ipam { subnet 10.1.0.0/24 }
    hostport {
        allow 30000..32767, 8080/tcp
        deny 31000
        host-ip 198.18.0.1
    }
    bandwidth {
        default ingress 100M egress 50M
        max ingress 1G egress 500M
        namespace batch, jobs {
            default ingress 10M
            max egress 20M
        }
    }
}
network static {
    bridge br-static { gateway }
    ipam { subnet 10.2.0.0/24 }
    bandwidth { limit ingress 8M burst 1M egress 4M }
}
"""
PODS, STATIC = compile_sources([SourceFile("policy.netdsl", SOURCE)]).networks


def _pod(*mappings: PortMapping, namespace: str | None = None, **rates) -> PodContext:
    return PodContext(
        "c1", port_mappings=mappings, namespace=namespace, bandwidth=BandwidthRequest(**rates)
    )


@pytest.mark.parametrize(
    "mapping",
    [
        PortMapping(30080, 80),
        PortMapping(8080, 80),
        PortMapping(32767, 1, "udp"),
        PortMapping(30001, 80, host_ip=ipaddress.ip_address("198.18.0.1")),
    ],
)
def test_allowed_mappings_pass(mapping):
    assert check_mappings(PODS, _pod(mapping)) == (mapping,)


@pytest.mark.parametrize(
    ("mapping", "words", "line"),
    [
        (PortMapping(31000, 80), "refused by `deny 31000`", 7),
        (PortMapping(8080, 80, "udp"), "outside the allowed ports", 6),
        (PortMapping(22, 22), "outside the allowed ports", 6),
        (
            PortMapping(30001, 80, host_ip=ipaddress.ip_address("10.0.0.9")),
            "not one of the allowed",
            5,
        ),
    ],
)
def test_refused_mappings_name_the_rule_and_its_line(mapping, words, line):
    with pytest.raises(PolicyError) as refusal:
        check_mappings(PODS, _pod(mapping))
    assert refusal.value.code == Code.HOSTPORT_REFUSED
    assert words in str(refusal.value)
    assert refusal.value.span.line == line


def test_a_network_without_hostport_refuses_any_mapping():
    with pytest.raises(PolicyError, match="no hostport support"):
        check_mappings(STATIC, _pod(PortMapping(30080, 80)))


def _rates(network, pod) -> tuple:
    shaping = resolve_bandwidth(network, pod)
    return tuple(b.rate_bits if b else None for b in (shaping.ingress, shaping.egress))


def test_defaults_apply_to_pods_without_annotations():
    assert _rates(PODS, _pod()) == (100_000_000, 50_000_000)


def test_a_namespace_block_overrides_the_network_per_direction():
    assert _rates(PODS, _pod(namespace="jobs")) == (10_000_000, 50_000_000)


def test_requests_win_over_defaults_up_to_the_maximum():
    pod = _pod(namespace="default", ingress_rate=900_000_000, egress_rate=1_000_000)
    assert _rates(PODS, pod) == (900_000_000, 1_000_000)


@pytest.mark.parametrize(
    ("namespace", "rates", "words"),
    [
        (None, {"ingress_rate": 2_000_000_000}, "above the maximum 1 Gbit/s"),
        ("batch", {"egress_rate": 30_000_000}, "above the maximum 20 Mbit/s"),
    ],
)
def test_requests_above_the_maximum_are_refused(namespace, rates, words):
    with pytest.raises(PolicyError) as refusal:
        resolve_bandwidth(PODS, _pod(namespace=namespace, **rates))
    assert refusal.value.code == Code.BANDWIDTH_REFUSED
    assert words in str(refusal.value)


def test_a_del_plans_past_the_policy():
    shaping = resolve_bandwidth(PODS, _pod(ingress_rate=2_000_000_000), enforce=False)
    assert shaping.ingress.rate_bits == 2_000_000_000


def test_static_limits_ignore_requests_and_keep_their_burst():
    shaping = resolve_bandwidth(STATIC, _pod(ingress_rate=500_000_000))
    assert shaping.ingress.rate_bits == 8_000_000
    assert shaping.ingress.burst_bits == 1_000_000
    assert shaping.egress.rate_bits == 4_000_000


def test_runtime_default_bursts_are_bounded():
    containerd = resolve_bandwidth(
        PODS, _pod(ingress_rate=8_000_000, ingress_burst=2**32 - 1)
    ).ingress
    crio = resolve_bandwidth(
        PODS, _pod(ingress_rate=8_000_000, ingress_burst=(2**32 - 1) * 8 - 1)
    ).ingress
    assert containerd == crio
    assert containerd.burst_bytes == 100_000  # 100 ms at 1 MB/s


def test_requested_addresses_come_from_runtime_config_or_cni_args():
    from compiler.planner.context import requested_addresses

    assert requested_addresses({}, {"ips": ["10.1.0.7/24", "fd00::7"]}) == (
        ipaddress.ip_address("10.1.0.7"),
        ipaddress.ip_address("fd00::7"),
    )
    assert requested_addresses({"IP": "10.1.0.8"}, {}) == (ipaddress.ip_address("10.1.0.8"),)
    assert requested_addresses({}, {}) == ()


@pytest.mark.parametrize("address", ["10.1.0.1", "10.1.1.5", "fd00::5"])
def test_an_address_outside_the_ranges_or_the_gateway_is_refused(address):
    from compiler.planner.policy import check_requested

    pod = PodContext("c1", requested_ips=(ipaddress.ip_address(address),))
    with pytest.raises(PolicyError) as refusal:
        check_requested(PODS, pod)
    assert refusal.value.code == Code.NO_ADDRESS
    assert address in str(refusal.value)
