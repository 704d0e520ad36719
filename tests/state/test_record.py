"""Attachment records round-trip what an ADD was asked for, and old or broken ones are handled."""

import ipaddress
import json

from compiler.planner.context import BandwidthRequest, PodContext, PortMapping
from runtime import attachment_records as records
from runtime.attachment_records import Record

POD = PodContext(
    "c1",
    "eth0",
    "/run/netns/p",
    "default",
    "web",
    (PortMapping(8080, 80, "tcp", ipaddress.ip_address("198.18.0.1")), PortMapping(53, 53, "udp")),
    BandwidthRequest(10_000_000, None, 5_000_000, 4294967295),
    (ipaddress.ip_address("10.244.1.7"),),
)


def test_a_record_round_trips_context_and_bindings(tmp_path):
    path = str(tmp_path / "pods" / "key.json")
    Record(path, POD, {"ipv4.ip": "10.244.1.7"}).save()
    loaded = records.load(path)
    assert loaded == Record(path, POD, {"ipv4.ip": "10.244.1.7"})
    assert records.paths(str(tmp_path / "pods")) == [path]
    assert loaded.delete() and not loaded.delete()


def test_unknown_context_survives_the_round_trip(tmp_path):
    path = str(tmp_path / "key.json")
    unknown = PodContext("c1", port_mappings=None, bandwidth=None)
    Record(path, unknown).save()
    assert records.load(path).context == unknown


def test_a_record_in_the_first_layout_still_loads(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            {
                "format": 1,
                "bindings": {"ipv4.ip": "10.0.0.3"},
                "context": {
                    "container_id": "c1",
                    "ifname": "eth0",
                    "netns": None,
                    "namespace": None,
                    "pod_name": None,
                    "requested_ips": [],
                    "bandwidth": None,
                    "port_mappings": [
                        {
                            "host_port": 80,
                            "container_port": 8080,
                            "protocol": "tcp",
                            "host_ip": None,
                        }
                    ],
                },
            }
        )
    )
    loaded = records.load(str(path))
    assert loaded.context.port_mappings == (PortMapping(80, 8080),)
    assert loaded.context.bandwidth is None


def test_missing_or_garbled_records_load_as_none(tmp_path):
    assert records.load(str(tmp_path / "none.json")) is None
    for text in ("{", "[]", '{"context": {"ifname": 5}}', '{"context": "x"}'):
        (tmp_path / "bad.json").write_text(text)
        assert records.load(str(tmp_path / "bad.json")) is None
