"""What the kubelet does to run a DaemonSet's pod on a node, done here through CRI.

No kubelet runs in the tests; this module does its part for the one pod
spec netc generates, and nothing it was not asked:

- the ConfigMap volume in the kubelet's layout (its "atomic writer"): the
  keys are symlinks `netc.json -> ..data/netc.json`, `..data` is a symlink
  to a timestamped directory, and an update writes a new directory and
  renames a new `..data` over the old one -- one atomic swap, what a
  program watching the mounted file sees on a real node;
- RunPodSandbox with the pod's host namespaces (`hostNetwork`, `hostPID`),
  then CreateContainer with the container's image, args (`$(VAR)`
  references expanded), environment (the downward API's `spec.nodeName`
  given the node's name), capabilities, seccomp and AppArmor profiles, a
  read-only root file system and mounts, each volume as the kubelet
  resolves it: hostPath type checks and creation in the node's mount
  namespace, where containerd finds the mounts' sources;
- the container's log, in CRI's format, read back for the tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2 as cri

DATA = "..data"
APPARMOR = "container.apparmor.security.beta.kubernetes.io"
PROPAGATION = {
    None: cri.PROPAGATION_PRIVATE,
    "None": cri.PROPAGATION_PRIVATE,
    "HostToContainer": cri.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": cri.PROPAGATION_BIDIRECTIONAL,
}
SECCOMP = {
    "RuntimeDefault": cri.SecurityProfile.RuntimeDefault,
    "Unconfined": cri.SecurityProfile.Unconfined,
}


class ConfigVolume:
    """A ConfigMap mounted as the kubelet mounts it, updated as the kubelet updates it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True)

    def write(self, data: dict[str, str]) -> None:
        """Publish a new version of the ConfigMap's data: one rename of `..data`."""
        stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{secrets.token_hex(4)}"
        (self.directory / stamp).mkdir()
        for key, text in data.items():
            (self.directory / stamp / key).write_text(text)
        link = self.directory / DATA
        old = os.readlink(link) if link.is_symlink() else None
        (self.directory / "..data_tmp").symlink_to(stamp)
        os.rename(self.directory / "..data_tmp", link)
        for key in data:
            if not (self.directory / key).is_symlink():
                (self.directory / key).symlink_to(f"{DATA}/{key}")
        if old is not None:
            shutil.rmtree(self.directory / old)

    def data(self) -> dict[str, str]:
        """The ConfigMap's data as the volume holds it now."""
        return {path.name: path.read_text() for path in sorted((self.directory / DATA).iterdir())}


@dataclass(frozen=True)
class PodSpec:
    """The one container of a DaemonSet's pod template, and that template's spec."""

    pod: dict[str, Any]
    container: dict[str, Any]
    annotations: dict[str, str]

    @classmethod
    def of(cls, daemon_set: dict[str, Any]) -> PodSpec:
        template = daemon_set["spec"]["template"]
        (container,) = template["spec"]["containers"]
        return cls(template["spec"], container, template["metadata"].get("annotations", {}))

    def volume(self, name: str) -> dict[str, Any]:
        return next(v for v in self.pod["volumes"] if v["name"] == name)


class HostPathRefused(AssertionError):
    """A hostPath volume the kubelet would refuse (its `type` check fails)."""


HOST_PATH_TYPES = {
    "DirectoryOrCreate": 'mkdir -p -m 0755 "$1"',
    "FileOrCreate": '[ -e "$1" ] || { umask 022; touch "$1"; }',
    "Directory": 'test -d "$1"',
    "File": 'test -f "$1"',
    "": "true",
}
"""What the kubelet checks or creates on the node for each hostPath type, as shell."""
InNode = Callable[..., subprocess.CompletedProcess]
"""Runs a command in the node's mount namespace (`Containerd.in_node`)."""


def _host_path(volume: dict[str, Any], in_node: InNode) -> str:
    """A hostPath volume's path, after the kubelet's type check (and creation) on the node."""
    path, kind = volume["path"], volume.get("type", "")
    if in_node("sh", "-c", HOST_PATH_TYPES[kind], "sh", path, check=False).returncode:
        raise HostPathRefused(f"hostPath type check failed: {path} is not a {kind}")
    return path


def _mounts(spec: PodSpec, config_maps: dict[str, Path], in_node: InNode) -> list[cri.Mount]:
    mounts = []
    for mount in spec.container.get("volumeMounts", []):
        volume = spec.volume(mount["name"])
        if "configMap" in volume:
            source = str(config_maps[volume["configMap"]["name"]])
            read_only = True  # the kubelet always mounts ConfigMaps read-only
        else:
            source = _host_path(volume["hostPath"], in_node)
            read_only = bool(mount.get("readOnly"))
        mounts.append(
            cri.Mount(
                container_path=mount["mountPath"],
                host_path=source,
                readonly=read_only,
                propagation=PROPAGATION[mount.get("mountPropagation")],
            )
        )
    return mounts


def _environment(spec: PodSpec, node: str) -> dict[str, str]:
    """The container's variables; of the downward API, only what netc's manifest uses."""
    fields = {"spec.nodeName": node}
    found = {}
    for variable in spec.container.get("env", []):
        if "value" in variable:
            found[variable["name"]] = variable["value"]
        else:
            found[variable["name"]] = fields[variable["valueFrom"]["fieldRef"]["fieldPath"]]
    return found


def _expand(argument: str, environment: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion of a container's args ("$$" escapes a "$")."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return environment.get(match[1], match[0])

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, argument)


def _namespaces(spec: PodSpec) -> cri.NamespaceOption:
    return cri.NamespaceOption(
        network=cri.NODE if spec.pod.get("hostNetwork") else cri.POD,
        pid=cri.NODE if spec.pod.get("hostPID") else cri.CONTAINER,
    )


def _seccomp(spec: PodSpec) -> cri.SecurityProfile:
    """The container's profile, else the pod's; the kubelet's default is Unconfined."""
    chosen = (
        spec.container.get("securityContext", {}).get("seccompProfile")
        or spec.pod.get("securityContext", {}).get("seccompProfile")
        or {"type": "Unconfined"}
    )
    return cri.SecurityProfile(profile_type=SECCOMP[chosen["type"]])


def _apparmor(spec: PodSpec) -> str:
    """The container's AppArmor profile from the pod's annotation (Kubernetes 1.28).

    None given: the kubelet sends none, and the runtime applies its default
    profile where the node has AppArmor.
    """
    return spec.annotations.get(f"{APPARMOR}/{spec.container['name']}", "")


def sandbox_config(
    spec: PodSpec, name: str, namespace: str, logs: Path, cgroup_parent: str
) -> cri.PodSandboxConfig:
    """RunPodSandbox's configuration for the pod (host namespaces as the spec asks).

    The kubelet names the pod's host only when it has its own network (a
    hostNetwork pod shares the node's UTS namespace, and runc refuses).
    """
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace=namespace, uid=str(uuid.uuid4())),
        hostname="" if spec.pod.get("hostNetwork") else name,
        log_directory=str(logs),
        annotations=spec.annotations,
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=_namespaces(spec)),
        ),
    )


def container_config(
    spec: PodSpec, node: str, config_maps: dict[str, Path], log_path: str, in_node: InNode
) -> cri.ContainerConfig:
    """CreateContainer's configuration for the pod's container on `node`.

    `log_path` is relative to the sandbox's log directory (the kubelet's
    NAME/RESTARTS.log).
    """
    container = spec.container
    environment = _environment(spec, node)
    security = container.get("securityContext", {})
    capabilities = security.get("capabilities", {})
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=container["name"]),
        image=cri.ImageSpec(image=container["image"]),
        command=[_expand(a, environment) for a in container.get("command", [])],
        args=[_expand(a, environment) for a in container.get("args", [])],
        envs=[cri.KeyValue(key=k, value=v) for k, v in environment.items()],
        mounts=_mounts(spec, config_maps, in_node),
        log_path=log_path,
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(
                privileged=bool(security.get("privileged")),
                readonly_rootfs=bool(security.get("readOnlyRootFilesystem")),
                capabilities=cri.Capability(
                    add_capabilities=capabilities.get("add", []),
                    drop_capabilities=capabilities.get("drop", []),
                ),
                namespace_options=_namespaces(spec),
                seccomp=_seccomp(spec),
                apparmor_profile=_apparmor(spec),
            )
        ),
    )


def container_log(path: Path) -> str:
    """A container's output so far: CRI log lines stripped of time, stream and tag."""
    with contextlib.suppress(FileNotFoundError):
        lines = path.read_text(errors="replace").splitlines()
        return "".join(line.split(" ", 3)[3] + "\n" for line in lines if line.count(" ") >= 3)
    return ""
