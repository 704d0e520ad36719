"""Reading a CNI request: the network from stdin, the pod from CNI_ARGS and runtimeConfig.

The network travels compiled inside the conflist (`netc build --target
netc`); its digest is checked so a conflist edited by hand is refused rather
than half understood.  runtimeConfig keys are matched case-insensitively:
podman sends `portMappings`/`hostPort`, containerd `PortMappings`/`HostPort`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler import ir_codec
from compiler.ir import Network
from compiler.planner.context import (
    BandwidthRequest,
    ContextError,
    PodContext,
    bandwidth_from_runtime,
    lower_keys,
    mappings_from_runtime,
    parse_cni_args,
    requested_addresses,
)
from runtime.cni.protocol import (
    CODE_BAD_CONFIG,
    CODE_BAD_ENVIRONMENT,
    CODE_INCOMPATIBLE_VERSION,
    SUPPORTED_VERSIONS,
    Call,
    CniError,
    read_config,
)
from runtime.record import Record


@dataclass(frozen=True, slots=True)
class Request:
    """The decoded stdin of an ADD, DEL, CHECK, GC or STATUS."""

    version: str
    network: Network
    runtime_config: dict[str, Any]
    config: dict[str, Any]


def requested_version(config: dict[str, Any]) -> str:
    """The cniVersion asked for (code 1 when netc does not speak it)."""
    version = config.get("cniVersion") or "0.1.0"
    if version not in SUPPORTED_VERSIONS:
        raise CniError(CODE_INCOMPATIBLE_VERSION, f"CNI version {version} is not supported",
                       f"netc-cni supports {', '.join(SUPPORTED_VERSIONS)}")
    return version


def parse_request(data: bytes) -> Request:
    """Everything stdin says, validated (codes 1, 6, 7)."""
    config = read_config(data)
    version = requested_version(config)
    embedded = config.get("netc")
    if not isinstance(embedded, dict) or not isinstance(embedded.get("network"), dict):
        raise CniError(CODE_BAD_CONFIG, "the configuration has no compiled netc network",
                       "build the conflist with `netc build --target netc`")
    if embedded.get("format") != ir_codec.FORMAT:
        raise CniError(CODE_BAD_CONFIG, f"netc network format {embedded.get('format')!r} is "
                       f"not {ir_codec.FORMAT}", "rebuild the conflist with this netc")
    if embedded.get("digest") != ir_codec.digest(embedded["network"]):
        raise CniError(CODE_BAD_CONFIG, "the compiled network was edited after netc build",
                       "edit the .netdsl source and run netc build again")
    try:
        network = ir_codec.decode(embedded["network"])
    except ir_codec.FormatError as error:
        raise CniError(CODE_BAD_CONFIG, str(error)) from None
    if config.get("name") not in (None, network.name):
        raise CniError(CODE_BAD_CONFIG, f"network name {config.get('name')!r} does not match "
                       f"the compiled network {network.name!r}")
    runtime_config = config.get("runtimeConfig") or {}
    if not isinstance(runtime_config, dict):
        raise CniError(CODE_BAD_CONFIG, "runtimeConfig is not an object")
    return Request(version, network, lower_keys(runtime_config), config)


def pod_context(call: Call, request: Request, previous: Record | None) -> PodContext:
    """The pod of this call; what runtimeConfig lacks comes from the ADD's record.

    An ADD without runtimeConfig has no ports and no bandwidth request; a DEL
    or CHECK without either knows nothing (None), so its plan removes or checks
    whatever could exist.
    """
    try:
        args = parse_cni_args(call.args)
        mappings = _maybe(request.runtime_config, "portmappings", mappings_from_runtime)
        bandwidth = _maybe(request.runtime_config, "bandwidth", bandwidth_from_runtime)
        requested = requested_addresses(args, request.runtime_config)
    except ContextError as error:
        code = CODE_BAD_ENVIRONMENT if "CNI_ARGS" in str(error) else CODE_BAD_CONFIG
        raise CniError(code, str(error)) from None
    if call.command == "ADD":
        mappings = () if mappings is None else mappings
        bandwidth = BandwidthRequest() if bandwidth is None else bandwidth
    elif previous is not None:
        mappings = previous.context.port_mappings if mappings is None else mappings
        bandwidth = previous.context.bandwidth if bandwidth is None else bandwidth
    assert call.container_id and call.ifname
    return PodContext(call.container_id, call.ifname, call.netns,
                      args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME"), mappings,
                      bandwidth, requested)


def _maybe(config: dict[str, Any], key: str, reader):
    return reader(config[key]) if key in config else None
