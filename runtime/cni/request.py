"""Reading a CNI request: the network from stdin, the pod from CNI_ARGS and runtimeConfig.

The network travels compiled inside the conflist (`netc build --target
netc`); its digest is checked so a conflist edited by hand is refused rather
than half understood.  runtimeConfig keys are matched case-insensitively:
podman sends `portMappings`/`hostPort`, containerd `PortMappings`/`HostPort`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from compiler import ir_codec
from compiler.datatypes import frozen, replace
from compiler.errors import Code, NetcError
from compiler.ir import IPInterface, Network
from compiler.planner.context import (
    BandwidthRequest,
    PodContext,
    bandwidth_from_runtime,
    lower_keys,
    mappings_from_runtime,
    parse_cni_args,
    requested_addresses,
)
from compiler.versions import CNI_VERSIONS
from runtime.attachment_records import Record
from runtime.cni.protocol import Call, read_config


@frozen
class Request:
    """The decoded stdin of an ADD, DEL, CHECK, GC or STATUS."""

    version: str
    network: Network
    runtime_config: dict[str, Any]
    config: dict[str, Any]


def requested_version(config: Mapping[str, Any]) -> str:
    """The cniVersion asked for (code 1 when netc does not speak it)."""
    version = config.get("cniVersion") or "0.1.0"
    if version not in CNI_VERSIONS:
        raise NetcError(
            f"CNI version {version} is not supported",
            Code.INCOMPATIBLE_VERSION,
            f"netc-cni supports {', '.join(CNI_VERSIONS)}",
        )
    return version


def parse_request(data: bytes) -> Request:
    """Everything stdin says, validated (codes 1, 6, 7)."""
    config = read_config(data)
    version = requested_version(config)
    embedded = config.get("netc")
    if not isinstance(embedded, dict) or not isinstance(embedded.get("network"), dict):
        raise NetcError(
            "the configuration has no compiled netc network",
            Code.BAD_CONFIG,
            "build the conflist with `netc build --target netc`",
        )
    if embedded.get("format") not in ir_codec.READABLE:
        readable = " or ".join(map(str, ir_codec.READABLE))
        raise NetcError(
            f"netc network format {embedded.get('format')!r} is not {readable}",
            Code.BAD_CONFIG,
            "rebuild the conflist with this netc",
        )
    if embedded.get("digest") != ir_codec.digest(embedded["network"]):
        raise NetcError(
            "the compiled network was edited after netc build",
            Code.BAD_CONFIG,
            "edit the .netdsl source and run netc build again",
        )
    network = ir_codec.decode(embedded["network"])
    if config.get("name") not in (None, network.name):
        raise NetcError(
            f"network name {config.get('name')!r} does not match the compiled "
            f"network {network.name!r}",
            Code.BAD_CONFIG,
        )
    runtime_config = config.get("runtimeConfig", {})
    if not isinstance(runtime_config, dict):
        raise NetcError("runtimeConfig is not an object", Code.BAD_CONFIG)
    return Request(version, network, lower_keys(runtime_config), config)


def refuse_previous_result(request: Request) -> None:
    """An ADD with `prevResult`: netc-cni was put after another plugin (code 7).

    Runtimes give `prevResult` on ADD to every plugin but the first; netc-cni
    creates the pod's interface and answers with its own result, which would
    drop whatever the plugins before it made and returned.
    """
    if "prevResult" in request.config:
        raise NetcError(
            "netc-cni was given a prevResult on ADD: it must be the first plugin of its conflist",
            Code.BAD_CONFIG,
            "put the other plugins after it (`chain TYPE` in the .netdsl)",
        )


def previous_addresses(request: Request) -> tuple[IPInterface, ...] | None:
    """The addresses of the runtime's cached result (`prevResult`); None without one.

    A CHECK gets the chain's final ADD result, as the runtime cached it; what
    it lists must be what netc reserved.  Malformed, it is code 7.
    """
    if "prevResult" not in request.config:
        return None
    previous = request.config["prevResult"]
    ips = previous.get("ips", []) if isinstance(previous, dict) else None
    if not isinstance(ips, list):
        raise NetcError("prevResult is not a CNI result: no list of ips", Code.BAD_CONFIG)
    found = []
    for entry in ips:
        address = entry.get("address") if isinstance(entry, dict) else None
        try:
            found.append(ipaddress.ip_interface(address if isinstance(address, str) else ""))
        except ValueError:
            raise NetcError(
                f"prevResult holds {entry!r}, not an ips entry with an address", Code.BAD_CONFIG
            ) from None
    return tuple(found)


def pod_context(call: Call, request: Request, previous: Record | None) -> PodContext:
    """The pod of this call.

    An ADD is what CNI_ARGS and runtimeConfig say (no runtimeConfig: no ports,
    no bandwidth request).  A DEL or CHECK is what the ADD's record says,
    whatever this call's runtimeConfig claims: a DEL removes what the ADD
    made.  Without a record it knows nothing (None), so its plan removes or
    checks whatever could exist.
    """
    assert call.container_id and call.ifname
    if call.command != "ADD":
        if previous is not None:
            return replace(previous.context, netns=call.netns)
        return PodContext(
            call.container_id, call.ifname, call.netns, port_mappings=None, bandwidth=None
        )
    args = parse_cni_args(call.args)
    config = request.runtime_config
    mappings = mappings_from_runtime(config["portmappings"]) if "portmappings" in config else ()
    bandwidth = (
        bandwidth_from_runtime(config["bandwidth"]) if "bandwidth" in config else BandwidthRequest()
    )
    return PodContext(
        call.container_id,
        call.ifname,
        call.netns,
        args.get("K8S_POD_NAMESPACE"),
        args.get("K8S_POD_NAME"),
        mappings,
        bandwidth,
        requested_addresses(args, config),
    )
