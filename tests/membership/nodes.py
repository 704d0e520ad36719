"""Node objects as the Kubernetes API serves them, for the tests of the kubernetes source.

Each validates against the Kubernetes 1.28 schema (kubernetes-validate,
strict): what the agent reads in the tests is what a real apiserver could
send.
"""

from __future__ import annotations

from typing import Any


def node_object(
    name: str,
    pod_cidrs: list[str] | None = None,
    internal_ips: list[str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node as kubelet registers it and kube-controller-manager gives it podCIDRs."""
    spec: dict[str, Any] = {}
    if pod_cidrs:
        spec = {"podCIDR": pod_cidrs[0], "podCIDRs": list(pod_cidrs)}
    addresses = [{"type": "InternalIP", "address": ip} for ip in internal_ips or []]
    addresses.append({"type": "Hostname", "address": name})
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "addresses": addresses,
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
                "containerRuntimeVersion": "containerd://1.6.20",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "v1.28.4",
                "kubeletVersion": "v1.28.4",
                "operatingSystem": "linux",
                "osImage": "Debian 12",
            },
        },
    }
