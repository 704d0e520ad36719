"""`netc run`: execute any conflist the way libcni does, like cnitool.

For admins trying a network and for tests, with netc's plugin or the stock
ones.  What libcni does and this driver copies:

* ADD runs the plugins in order, each getting the previous one's result as
  `prevResult`; the final result is cached in
  `<cache-dir>/results/<network>-<container id>-<ifname>` (libcni's
  cniCacheV1 layout, so other tools can read it).
* DEL runs them in reverse, each getting the cached *final* ADD result; the
  cache entry goes after a successful DEL.  CHECK runs in order with it.
* Each plugin gets `name` and `cniVersion` injected, and a `runtimeConfig`
  holding the capability arguments it declares (`portMappings`, `bandwidth`).
* A plugin `type` is found in the CNI path directories, in order.

Port mappings are sent in podman's spelling; bandwidth bursts the user does
not give are sent as containerd sends them (4294967295 bits).  With
`node_netns` the plugins run inside that network namespace (`ip netns exec`,
or with `node_entry="nsenter"` in it alone: `in_node`), so a network can be
tried on a throwaway "node" without touching the host.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Mapping
from typing import Any

from compiler.datatypes import field, frozen
from compiler.planner.context import BandwidthRequest, PortMapping
from runtime.files import remove, write_atomically
from runtime.netns import netns_path

CONTAINERD_BURST = 2**32 - 1
NODE_ENTRIES = {
    "ip": ("ip", "netns", "exec", "{node}"),
    "nsenter": ("nsenter", "--net={path}"),
}
"""Commands that run a program in a named network namespace.  `ip netns exec` also gives it
a mount namespace of its own with the namespace's /sys, copying every mount of the machine
on each call; `nsenter --net` enters the network namespace alone, as a plugin a runtime
starts on a node is in the node's namespaces and no other."""
DEFAULT_CNI_PATH = ("/opt/cni/bin", "/usr/lib/cni")


class PluginFailed(Exception):
    """A plugin answered with an error; `error` is its CNI error object."""

    def __init__(self, plugin: str, command: str, error: dict[str, Any]) -> None:
        super().__init__(f"{plugin} {command}: {error.get('msg', error)}")
        self.error = error


@frozen
class Invocation:
    """Who and what a `netc run` call is about."""

    container_id: str
    netns: str | None
    ifname: str = "eth0"
    args: str = ""
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: BandwidthRequest | None = None
    cni_path: tuple[str, ...] = DEFAULT_CNI_PATH
    cache_dir: str = "/var/lib/cni"
    node_netns: str | None = None
    node_entry: str = "ip"
    """How a plugin enters `node_netns` (`NODE_ENTRIES`)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    stderr_log: str | None = None
    """A file each plugin's stderr is appended to (else it is dropped, unless it fails)."""

    def capability_args(self) -> dict[str, Any]:
        """The runtime's capability arguments, keyed by capability name."""
        found: dict[str, Any] = {}
        if self.port_mappings:
            found["portMappings"] = [
                {
                    "hostPort": m.host_port,
                    "containerPort": m.container_port,
                    "protocol": m.protocol,
                    **({"hostIP": str(m.host_ip)} if m.host_ip else {}),
                }
                for m in self.port_mappings
            ]
        if self.bandwidth and (self.bandwidth.ingress_rate or self.bandwidth.egress_rate):
            found["bandwidth"] = _bandwidth(self.bandwidth)
        return found


def _bandwidth(request: BandwidthRequest) -> dict[str, int]:
    document = {}
    for direction in ("ingress", "egress"):
        rate = request.rate(direction)
        if rate:
            document[f"{direction}Rate"] = rate
            document[f"{direction}Burst"] = request.burst(direction) or CONTAINERD_BURST
    return document


class Conflist:
    """A parsed network configuration list."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.document = json.loads(raw)
        self.name: str = self.document["name"]
        self.version: str = self.document.get("cniVersion", "0.1.0")
        self.plugins: list[dict[str, Any]] = self.document["plugins"]


def add(conflist: Conflist, who: Invocation) -> dict[str, Any]:
    """Run ADD through the chain and cache the final result."""
    result = None
    for plugin in conflist.plugins:
        result = _execute(conflist, plugin, "ADD", who, result)
    assert result is not None
    _write_cache(conflist, who, result)
    return result


def delete(conflist: Conflist, who: Invocation) -> None:
    """Run DEL through the chain in reverse, then drop the cached result."""
    cached = _read_cache(conflist, who)
    for plugin in reversed(conflist.plugins):
        _execute(conflist, plugin, "DEL", who, cached)
    remove(_cache_path(conflist, who))


def check(conflist: Conflist, who: Invocation) -> None:
    """Run CHECK through the chain with the cached ADD result."""
    cached = _read_cache(conflist, who)
    for plugin in conflist.plugins:
        _execute(conflist, plugin, "CHECK", who, cached)


def _execute(
    conflist: Conflist,
    plugin: Mapping[str, Any],
    command: str,
    who: Invocation,
    previous: dict[str, Any] | None,
) -> dict[str, Any] | None:
    request = dict(plugin)
    request["name"] = conflist.name
    request["cniVersion"] = conflist.version
    runtime_config = {
        key: value
        for key, value in who.capability_args().items()
        if plugin.get("capabilities", {}).get(key)
    }
    if runtime_config:
        request["runtimeConfig"] = runtime_config
    if previous is not None:
        request["prevResult"] = previous
    environment = {
        **os.environ,
        **who.extra_env,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": who.container_id,
        "CNI_NETNS": who.netns or "",
        "CNI_IFNAME": who.ifname,
        "CNI_ARGS": who.args,
        "CNI_PATH": ":".join(who.cni_path),
    }
    command_line = [_find(plugin["type"], who.cni_path)]
    if who.node_netns:
        command_line = [*in_node(who.node_netns, who.node_entry), *command_line]
    done = subprocess.run(
        command_line,
        input=json.dumps(request).encode(),
        env=environment,
        capture_output=True,
        check=False,
    )
    if who.stderr_log and done.stderr:
        with open(who.stderr_log, "ab") as log:
            log.write(done.stderr)
    if done.returncode != 0:
        raise PluginFailed(plugin["type"], command, _error(done))
    if command != "ADD":
        return None
    return _json_object(done.stdout)


def in_node(node: str, entry: str = "ip") -> list[str]:
    """The command prefix that runs a program in the network namespace `node`."""
    return [part.format(node=node, path=netns_path(node)) for part in NODE_ENTRIES[entry]]


def _json_object(text: bytes | str) -> dict[str, Any]:
    """What a plugin printed (or the cache holds), which CNI says is a JSON object."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, found {type(document).__name__}")
    return document


def _error(done: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    try:
        return _json_object(done.stdout)
    except ValueError:
        text = (done.stdout or done.stderr).decode(errors="replace").strip()
        return {"code": 999, "msg": text or f"exit status {done.returncode}"}


def _find(plugin_type: str, directories: tuple[str, ...]) -> str:
    for directory in directories:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"plugin {plugin_type} not found in {':'.join(directories)}")


def _cache_path(conflist: Conflist, who: Invocation) -> str:
    name = f"{conflist.name}-{who.container_id}-{who.ifname}"
    return os.path.join(who.cache_dir, "results", name)


def _write_cache(conflist: Conflist, who: Invocation, result: dict[str, Any]) -> None:
    """Cache the ADD's result, whole or not at all, as libcni does (not flushed).

    An entry matters as long as the sandbox's network namespace does, which
    no reboot keeps, so a crash may lose it; libcni does not flush its cache
    either, and a harness timing plugins through this driver pays what
    containerd pays.
    """
    path = _cache_path(conflist, who)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    entry = {
        "kind": "cniCacheV1",
        "containerId": who.container_id,
        "config": base64.b64encode(conflist.raw).decode(),
        "ifName": who.ifname,
        "networkName": conflist.name,
        "cniArgs": [kv.split("=", 1) for kv in who.args.split(";") if "=" in kv],
        "capabilityArgs": who.capability_args(),
        "result": result,
    }
    if who.netns:
        entry["netns"] = who.netns
    write_atomically(path, json.dumps(entry).encode(), durable=False)


def _read_cache(conflist: Conflist, who: Invocation) -> dict[str, Any] | None:
    try:
        with open(_cache_path(conflist, who)) as handle:
            entry = _json_object(handle.read())
    except (FileNotFoundError, ValueError):
        return None
    if entry.get("kind") != "cniCacheV1":
        return entry
    result = entry.get("result")
    return result if isinstance(result, dict) else None
