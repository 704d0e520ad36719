"""Reading what a runtime sends: strict numbers, addresses without scopes, the right codes."""

import pytest

from compiler.errors import Code
from compiler.planner.context import (
    BandwidthRequest,
    ContextError,
    PortMapping,
    bandwidth_from_runtime,
    mappings_from_runtime,
    parse_cni_args,
    requested_addresses,
)


def test_both_spellings_of_a_mapping_are_read():
    podman = {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
    containerd = {"HostPort": 8080, "ContainerPort": 80, "Protocol": "TCP", "HostIP": ""}
    assert mappings_from_runtime([podman, containerd]) == (PortMapping(8080, 80),) * 2


@pytest.mark.parametrize(
    "value", [True, 1.5, " 80 ", "80", 0, 65536, -1, float("inf"), None, 10**30]
)
def test_a_port_must_be_a_json_integer_in_range(value):
    with pytest.raises(ContextError) as refused:
        mappings_from_runtime([{"hostPort": value, "containerPort": 80}])
    assert refused.value.code == Code.BAD_CONFIG


@pytest.mark.parametrize("protocol", ["icmp", 6, "tcp\n", ""])
def test_unknown_protocols_are_refused(protocol):
    if protocol == "":  # empty means the default, as runtimes send it
        assert mappings_from_runtime([{"hostPort": 1, "containerPort": 2, "protocol": ""}])
        return
    with pytest.raises(ContextError):
        mappings_from_runtime([{"hostPort": 1, "containerPort": 2, "protocol": protocol}])


@pytest.mark.parametrize("rate", [-1, 1.5, "1000", True, float("inf"), float("nan")])
def test_rates_must_be_non_negative_integers(rate):
    with pytest.raises(ContextError):
        bandwidth_from_runtime({"ingressRate": rate})


def test_zero_and_absent_rates_mean_not_asked():
    assert bandwidth_from_runtime({"IngressRate": 0, "EgressRate": 1000}) == BandwidthRequest(
        egress_rate=1000
    )


def test_cni_args_errors_are_environment_errors():
    with pytest.raises(ContextError) as refused:
        parse_cni_args("K8S_POD_NAME")
    assert refused.value.code == Code.BAD_ENVIRONMENT
    with pytest.raises(ContextError) as refused:
        requested_addresses({"IP": "not-an-ip"}, {})
    assert refused.value.code == Code.BAD_ENVIRONMENT


@pytest.mark.parametrize("entries", [["fe80::1%eth0"], "10.0.0.1", [5]])
def test_requested_addresses_are_plain_address_strings(entries):
    with pytest.raises(ContextError) as refused:
        requested_addresses({}, {"ips": entries})
    assert refused.value.code == Code.BAD_CONFIG
