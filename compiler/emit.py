"""Conflist emitters: a network as the JSON a container runtime loads.

Two targets:

* `reference` -- a chain of the stock plugins (bridge with host-local,
  portmap, bandwidth) or the passthrough main plugin, then the `chain`
  plugins, for nodes that have only containernetworking-plugins.  hostPort
  and bandwidth *policies* cannot be expressed there; `target_diagnostics`
  says so instead of dropping them silently.
* `netc` -- the plugin `netc-cni` carrying the compiled network
  (`compiler.ir_codec`), executed by netc's own runtime, then the `chain`
  plugins: the runtime (libcni) runs them after it, each getting the result
  before it as `prevResult`, as it does after the stock plugins.

Output is deterministic: same input, same bytes, so `netc build --check` can
gate CI on drift.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from compiler import datatypes, ir_codec
from compiler.diagnostics import Diagnostic, Severity
from compiler.ir import (
    DEFAULT_DATA_DIR,
    Bandwidth,
    Bridge,
    Cluster,
    Ipam,
    Limits,
    Network,
    Subnet,
)
from compiler.shaping import bucket
from compiler.source import Span

TARGETS = ("reference", "netc")
NETC_PLUGIN_TYPE = "netc-cni"


def conflist(network: Network, target: str, cni_version: str | None = None) -> dict[str, Any]:
    """The conflist of a network; `cni_version` (from the command line) overrides the source."""
    version = cni_version or network.cni_version
    plugins = _netc_plugins(network, version) if target == "netc" else _reference_plugins(network)
    return {"cniVersion": version, "name": network.name, **network.conflist, "plugins": plugins}


def render(document: dict[str, Any]) -> str:
    """The text written to disk: two-space JSON in UTF-8 (statement paths read as written)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def file_name(network: Network) -> str:
    """`NN-name.conflist`: runtimes take the lexically first file, so NN orders networks."""
    return f"{network.priority:02d}-{network.name}.conflist"


def _reference_plugins(network: Network) -> list[dict[str, Any]]:
    plugins = [_main_plugin(network)]
    if network.hostport is not None:
        portmap: dict[str, Any] = {"type": "portmap", "capabilities": {"portMappings": True}}
        if not network.hostport.snat:
            portmap["snat"] = False
        plugins.append(portmap)
    if network.bandwidth is not None:
        plugins.append(_bandwidth_plugin(network.bandwidth))
    return plugins + _chained_plugins(network)


def _chained_plugins(network: Network) -> list[dict[str, Any]]:
    """The `chain` plugins, in order, their options as written: the same for both targets."""
    return [{"type": p.type, **p.options} for p in network.chain]


def _main_plugin(network: Network) -> dict[str, Any]:
    if network.plugin is not None:
        plugin = {"type": network.plugin.type, **network.plugin.options}
        if network.ipam is not None:
            plugin["ipam"] = host_local(network.ipam)
        return plugin
    assert network.bridge is not None and network.ipam is not None
    return _bridge_plugin(network.bridge, network.ipam)


def _bridge_plugin(bridge: Bridge, ipam: Ipam) -> dict[str, Any]:
    plugin: dict[str, Any] = {"type": "bridge", "bridge": bridge.name}
    if bridge.mtu is not None:
        plugin["mtu"] = bridge.mtu
    # The bridge plugin's ipMasq spares only the node's own subnet: on a cluster it would
    # masquerade traffic to other nodes' pods.  `netc apply --node` masquerades instead,
    # sparing the cluster's pod CIDRs.
    masquerade = bridge.masquerade and not ipam.pod_cidrs
    flags = (
        ("isGateway", bridge.gateway),
        ("ipMasq", masquerade),
        ("hairpinMode", bridge.hairpin),
        ("promiscMode", bridge.promiscuous),
    )
    plugin.update((key, True) for key, on in flags if on)
    plugin["ipam"] = host_local(ipam)
    if ipam.dns is not None:
        plugin["dns"] = ipam.dns.cni()
    if ipam.static_ips:
        plugin["capabilities"] = {"ips": True}
    return plugin


def host_local(ipam: Ipam) -> dict[str, Any]:
    """The host-local IPAM object: one range set per address family."""
    ranges = [[_range(s) for s in ipam.subnets_of(family)] for family in ipam.families()]
    document: dict[str, Any] = {"type": "host-local", "ranges": ranges}
    if ipam.routes:
        document["routes"] = [
            {"dst": str(r.dst), **({"gw": str(r.via)} if r.via else {})} for r in ipam.routes
        ]
    if ipam.data_dir != DEFAULT_DATA_DIR:
        document["dataDir"] = ipam.data_dir
    return document


def _range(subnet: Subnet) -> dict[str, str]:
    document = {"subnet": str(subnet.cidr)}
    if subnet.explicit_range:
        document["rangeStart"] = str(subnet.range_start)
        document["rangeEnd"] = str(subnet.range_end)
    if subnet.explicit_gateway:
        document["gateway"] = str(subnet.gateway)
    return document


def _bandwidth_plugin(bandwidth: Bandwidth) -> dict[str, Any]:
    if bandwidth.limit is None:
        return {"type": "bandwidth", "capabilities": {"bandwidth": True}}
    return {"type": "bandwidth", **static_limits(bandwidth.limit)}


def static_limits(limits: Limits) -> dict[str, int]:
    """The bandwidth plugin's static keys; without a burst, netc's default bucket."""
    keys: dict[str, int] = {}
    for direction in ("ingress", "egress"):
        rate = limits.direction(direction)
        if rate is not None:
            tbf = bucket(rate.rate, rate.burst, bound=False)
            keys[f"{direction}Rate"] = rate.rate
            keys[f"{direction}Burst"] = tbf.burst_bits
    return keys


def _netc_plugins(network: Network, version: str) -> list[dict[str, Any]]:
    # `ips`: podman replaces the capabilities of a first plugin that lacks it
    # (reload, `--ip`), which would hide the port mappings of that call.
    capabilities = {"ips": True}
    if network.hostport is not None:
        capabilities["portMappings"] = True
    if network.bandwidth is not None and network.bandwidth.limit is None:
        capabilities["bandwidth"] = True
    encoded = ir_codec.encode(datatypes.replace(network, cni_version=version))
    plugin: dict[str, Any] = {"type": NETC_PLUGIN_TYPE, "capabilities": capabilities}
    plugin["netc"] = {
        "format": ir_codec.FORMAT,
        "digest": ir_codec.digest(encoded),
        "network": encoded,
    }
    return [plugin, *_chained_plugins(network)]


def target_diagnostics(
    network: Network, target: str, version: str, clusters: Sequence[Cluster] = ()
) -> list[Diagnostic]:
    """What the chosen target cannot honour: warnings, or an error when it cannot run at all.

    `clusters`: the clusters of the input, which say who routes between the
    nodes of a cluster network (`netc apply`, or an etcd cluster's agents).
    """
    found = []
    if target == "netc" and network.plugin is not None:
        found.append(
            Diagnostic(
                "E107",
                f"the netc runtime does not run plugin `{network.plugin.type}`",
                network.plugin.span,
                expected="a `bridge` network for --target netc",
                hint="build networks with a third-party main plugin with --target reference",
            )
        )
    if target == "reference":
        found += _policy_warnings(network)
        if network.ipam is not None and network.ipam.pod_cidrs:
            cluster = next((c for c in clusters if c.name == network.ipam.cluster), None)
            found.append(_cluster_warning(network, network.ipam, cluster))
    if version == "1.1.0":
        found.append(
            _warning(
                "cniVersion 1.1.0 is refused by podman 4.3, containerd 1.6 and the Debian "
                "reference plugins",
                network.span,
                "emit 1.0.0 (the default) unless every runtime and plugin on the node knows 1.1.0",
            )
        )
    return found


def _cluster_warning(network: Network, ipam: Ipam, cluster: Cluster | None) -> Diagnostic:
    """The stock plugins leave the routes between nodes, and a masquerade that spares them, out.

    A static cluster's nodes get them from `netc apply --node`; an etcd
    cluster's from its agents, which run netc's own plugin.
    """
    masquerade = network.bridge is not None and network.bridge.masquerade
    message = f"the stock plugins do not route between the nodes of cluster `{ipam.cluster}`"
    if masquerade:
        message += (
            ", and their masquerade would NAT pod-to-pod traffic: the conflist leaves `ipMasq` out"
        )
    if cluster is not None and cluster.membership.dynamic:
        return _warning(
            message,
            ipam.span,
            "the routes between the nodes of a cluster whose "
            f"members come from {cluster.membership.source} are its agents' (netc "
            "agent), which write conflists of netc's plugin: build with --target "
            "netc, or roll out with --target kubernetes",
        )
    if masquerade:
        return _warning(
            message,
            ipam.span,
            "run `netc apply --node NAME` on each node: it "
            "adds the routes to the other nodes and the masquerade of traffic "
            "leaving the pod CIDRs",
        )
    return _warning(
        message,
        ipam.span,
        "run `netc apply --node NAME` on each node for the routes to the other nodes",
    )


def _policy_warnings(network: Network) -> list[Diagnostic]:
    found = []
    hostport = network.hostport
    if hostport and (hostport.allow or hostport.deny or hostport.host_ips):
        found.append(
            _warning(
                "the hostPort policy (allow, deny, host-ip) is not enforced by the portmap plugin",
                hostport.span,
                "build with --target netc to enforce it",
            )
        )
    bandwidth = network.bandwidth
    if bandwidth and (bandwidth.default or bandwidth.max or bandwidth.namespaces):
        found.append(
            _warning(
                "bandwidth defaults and maximums are not enforced by the bandwidth plugin",
                bandwidth.span,
                "build with --target netc to enforce them",
            )
        )
    return found


def _warning(message: str, span: Span | None, hint: str) -> Diagnostic:
    return Diagnostic("W001", message, span, hint=hint, severity=Severity.WARNING)
