"""The manifests that roll netc out on a cluster: `netc build --target kubernetes`.

    Namespace   netc-system, labelled for privileged pods (Pod Security admission)
    ServiceAccount, ClusterRole, ClusterRoleBinding   netc-node: only for a cluster
                whose members are the Kubernetes Nodes -- read them, annotate them
    ConfigMap   netc-config: the compiled cluster and networks (`netc.json`)
    DaemonSet   netc-node: one agent per node, every taint tolerated

The ConfigMap carries the compiled networks once, not one conflist per node:
each node's agent builds its own conflist from it (`compiler.cluster`), so a
thousand nodes fit in Kubernetes' 1 MiB.  The DaemonSet's pod template holds
a checksum of the ConfigMap, so a change of the configuration rolls the
agents, one node at a time.  Host paths are mounted at the same paths inside
the agent, because the plugin and the agent must agree on them: the agent
works in its container, never in the host's mount namespace, with the
capabilities `CAPABILITIES` (docs/deployment.md says what each is for, as
measured).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from typing import Any

from compiler import ir_codec
from compiler.datatypes import frozen
from compiler.diagnostics import Diagnostic
from compiler.digests import sha256
from compiler.identifiers import is_name, is_node_name
from compiler.ir import Cluster, Network
from compiler.lower_membership import settings_problem

CONFIG_FORMAT = 1
CONFIG_KEY = "netc.json"
CONFIG_DIR = "/etc/netc/config"
"""Where the ConfigMap is mounted: below /etc/netc, beside a datastore's certificates (a
mount nested in a ConfigMap's read-only volume could not be made)."""
ETCD_KEYS = {"ca_file": "ca.crt", "cert_file": "tls.crt", "key_file": "tls.key"}
"""The keys of the admin's Secret that hold etcd's CA and the agents' certificate and key."""
MEMORY_DIR = "/var/lib/netc"
AGENT = "netc-node"
"""The DaemonSet's name, and its ServiceAccount's, ClusterRole's and binding's."""
NODE_VERBS = ("get", "list", "watch", "patch")
"""What an agent does with Nodes: get its own, list and watch them all, annotate its own
(RBAC cannot narrow `patch` to the agent's own Node: docs/deployment.md)."""
LABELS = {"app.kubernetes.io/name": "netc", "app.kubernetes.io/component": "node-agent"}
CHECKSUM_ANNOTATION = "netc.dev/config-checksum"
HEALTH_PORT = 9943
CAPABILITIES = ("NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_CHROOT")
"""What the agent needs, and why (docs/deployment.md): NET_ADMIN links, routes, tc,
iptables; NET_RAW iptables-legacy; SYS_ADMIN setns into pods' network namespaces and its
callers' mount namespaces (the warm server); SYS_CHROOT setns into a mount namespace."""
LOAD_MODULES = "SYS_MODULE"
"""Added with `--load-modules`, for nodes that load neither br_netfilter nor vxlan."""
PROC_SYS = "/host/proc/sys"
"""Where the node's /proc/sys/net is mounted: a container's own /proc/sys is read-only."""
XTABLES_LOCK = "/run/xtables.lock"
"""The lock iptables takes, shared with kube-proxy and every iptables on the node."""
MODULES_DIR = "/lib/modules"


@frozen
class Rollout:
    """Choices of the admin: where the agent's image comes from, where CNI lives on nodes."""

    image: str
    pull_policy: str = "IfNotPresent"
    namespace: str = "netc-system"
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dir: str = "/opt/cni/bin"
    interval: int = 60
    warm_socket: str = "/run/netc/cni.sock"
    """The agent's warm server; the plugin it installs on the host hands calls there."""
    etcd_secret: str = "netc-etcd"
    """The Secret holding the etcd client's files (keys `ca.crt`, `tls.crt`, `tls.key`)."""
    load_modules: bool = False
    host_pid: bool = False
    """The host's PID namespace: how the warm server sees its callers where the kernel gives
    no pidfd with a connection (Linux before 6.5)."""
    log_format: str = "text"
    """The agents' log: text, or json (one object per line, for log pipelines)."""
    """The agent may load kernel modules (SYS_MODULE, the node's /lib/modules read-only)."""


def rollout_diagnostics(networks: Sequence[Network]) -> list[Diagnostic]:
    """What a cluster-wide rollout would get wrong: networks with one subnet for every node.

    The ConfigMap reaches every node, so a network with subnets of its own
    (no `cluster`) gives every node the same pod addresses, which Kubernetes'
    network model forbids -- unless the network says its pods talk only
    within their node (`node-local`).
    """
    return [
        Diagnostic(
            "E613",
            f"network `{n.name}` would give every node the same subnets: pods on "
            "different nodes would get the same addresses",
            n.ipam.span,
            expected="`ipam { cluster NAME }`: each node gets its own subnets of the cluster",
            hint="draw the subnets from a `cluster` block; for a network whose pods talk only "
            "within their node, write `node-local` in its ipam block",
        )
        for n in networks
        if n.ipam and n.ipam.cluster is None and not n.ipam.node_local
    ]


def config_document(clusters: Sequence[Cluster], networks: Sequence[Network]) -> dict[str, Any]:
    """What the agents read: the compiled clusters and networks, free of source locations."""
    return {
        "format": CONFIG_FORMAT,
        "clusters": [ir_codec.encode(c) for c in clusters],
        "networks": [ir_codec.encode(n) for n in networks],
    }


def read_config(document: Any) -> tuple[list[Cluster], list[Network]]:
    """The clusters and networks of a configuration document (`ir_codec.FormatError` if not)."""
    if not isinstance(document, dict) or document.get("format") != CONFIG_FORMAT:
        raise ir_codec.FormatError(f"not a netc configuration of format {CONFIG_FORMAT}")
    clusters, networks = document.get("clusters", []), document.get("networks", [])
    if not isinstance(clusters, list) or not isinstance(networks, list):
        raise ir_codec.FormatError("`clusters` and `networks` must be lists")
    read = [ir_codec.decode_as(Cluster, c) for c in clusters]
    for cluster in read:
        problem = _cluster_problem(cluster)
        if problem is not None:
            raise ir_codec.FormatError(f"cluster {cluster.name!r}: {problem}")
    return read, [ir_codec.decode(n) for n in networks]


def _cluster_problem(cluster: Cluster) -> str | None:
    """Why a cluster read from a configuration cannot be trusted as it is, or None.

    Its name becomes part of paths and of datastore keys, its nodes' names
    of keys, and its membership tells the agent where to connect with which
    files: each is held to the rule its source form is held to.
    """
    if not is_name(cluster.name):
        return "not a valid cluster name"
    bad = next((n.name for n in cluster.nodes if not is_node_name(n.name)), None)
    if bad is not None:
        return f"node name {bad!r} is not a Kubernetes node name"
    return settings_problem(cluster.membership)


def render_config(clusters: Sequence[Cluster], networks: Sequence[Network]) -> str:
    """The ConfigMap's text: keys sorted, so the same networks give the same bytes.

    One space of indentation keeps it readable in `kubectl get -o yaml`, and small.
    """
    return (
        json.dumps(
            config_document(clusters, networks), sort_keys=True, indent=1, ensure_ascii=False
        )
        + "\n"
    )


def manifests(
    clusters: Sequence[Cluster], networks: Sequence[Network], rollout: Rollout
) -> list[dict[str, Any]]:
    """Namespace, API access (Kubernetes membership), ConfigMap, DaemonSet: in apply order."""
    config = render_config(clusters, networks)
    checksum = "sha256:" + sha256(config.encode()).hexdigest()
    reads_nodes = any(c.membership.source == "kubernetes" for c in clusters)
    access = _api_access(rollout) if reads_nodes else []
    return [
        _namespace(rollout),
        *access,
        _config_map(rollout, config),
        _daemon_set(
            rollout,
            checksum,
            _host_directories(networks, rollout),
            _datastore(clusters, rollout),
            reads_nodes,
        ),
    ]


def _metadata(name: str, rollout: Rollout | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if rollout is not None:
        meta["namespace"] = rollout.namespace
    return meta


def _namespace(rollout: Rollout) -> dict[str, Any]:
    meta = _metadata(rollout.namespace)
    meta["labels"] |= {
        f"pod-security.kubernetes.io/{mode}": "privileged" for mode in ("enforce", "audit", "warn")
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _api_access(rollout: Rollout) -> list[dict[str, Any]]:
    """The agents' ServiceAccount, allowed what they do with Nodes and nothing else."""
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(AGENT, rollout),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _metadata(AGENT),
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": list(NODE_VERBS)}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": _metadata(AGENT),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": AGENT,
            },
            "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": rollout.namespace}],
        },
    ]


def _config_map(rollout: Rollout, config: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata("netc-config", rollout),
        "data": {CONFIG_KEY: config},
    }


@frozen
class _Volumes:
    """Volumes of the agent's pod and where its container mounts them."""

    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    args: list[str]


def _datastore(clusters: Sequence[Cluster], rollout: Rollout) -> _Volumes:
    """What an agent of a cluster with an etcd needs beyond the usual volumes.

    Its client's files, and a directory that outlives its pod and the node's
    reboots, where it remembers its block.  The files come from the admin's
    Secret, mounted read-only at the paths the `.netdsl` names: one volume
    per directory, holding just that directory's files, so a rotated
    certificate reaches the agents.
    """
    if not any(c.membership.source == "etcd" for c in clusters):
        return _Volumes([], [], [])
    files: dict[str, list[tuple[str, str]]] = {}
    for cluster in clusters:
        for field, key in ETCD_KEYS.items():
            path = getattr(cluster.membership, field)
            if path is not None:
                files.setdefault(posixpath.dirname(path), []).append(
                    (key, posixpath.basename(path))
                )
    volumes = [{"name": "memory", "hostPath": {"path": MEMORY_DIR, "type": "DirectoryOrCreate"}}]
    mounts: list[dict[str, Any]] = [{"name": "memory", "mountPath": MEMORY_DIR}]
    for index, (directory, items) in enumerate(sorted(files.items())):
        name = f"etcd-client-{index}"
        volumes.append(
            {
                "name": name,
                "secret": {
                    "secretName": rollout.etcd_secret,
                    "defaultMode": 0o400,
                    "items": [{"key": key, "path": file} for key, file in sorted(set(items))],
                },
            }
        )
        mounts.append({"name": name, "mountPath": directory, "readOnly": True})
    return _Volumes(volumes, mounts, ["--memory-dir", MEMORY_DIR])


def _host_directories(networks: Sequence[Network], rollout: Rollout) -> _Volumes:
    """The node's directories the agent writes in, each mounted at its own path.

    The CNI conf and bin dirs, the warm socket's, and every network's state
    and IPAM directories -- a directory below one already mounted is not
    mounted again --, the node's /proc/sys/net at `PROC_SYS`, the xtables
    lock, and with `load_modules` the node's modules, read-only.
    """
    wanted = [
        ("cni-conf", rollout.cni_conf_dir),
        ("cni-bin", rollout.cni_bin_dir),
        ("run", posixpath.dirname(rollout.warm_socket)),
    ]
    for kind, directories in (
        ("state", sorted({n.state_dir for n in networks})),
        ("ipam", sorted({n.ipam.data_dir for n in networks if n.ipam})),
    ):
        wanted += [(f"{kind}-{index}", path) for index, path in enumerate(directories)]
    kept = [
        (name, path)
        for index, (name, path) in enumerate(wanted)
        if not any(
            _below(path, other) and (path != other or earlier < index)
            for earlier, (_, other) in enumerate(wanted)
        )
    ]
    volumes = [
        {"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}
        for name, path in kept
    ]
    mounts: list[dict[str, Any]] = [{"name": name, "mountPath": path} for name, path in kept]
    volumes += [
        {"name": "xtables-lock", "hostPath": {"path": XTABLES_LOCK, "type": "FileOrCreate"}},
        {"name": "proc-sys-net", "hostPath": {"path": "/proc/sys/net", "type": "Directory"}},
    ]
    mounts += [
        {"name": "xtables-lock", "mountPath": XTABLES_LOCK},
        {"name": "proc-sys-net", "mountPath": f"{PROC_SYS}/net"},
    ]
    if rollout.load_modules:  # no type check: a node without the directory still runs it
        volumes.append({"name": "modules", "hostPath": {"path": MODULES_DIR}})
        mounts.append({"name": "modules", "mountPath": MODULES_DIR, "readOnly": True})
    return _Volumes(volumes, mounts, ["--proc-sys", PROC_SYS])


def _below(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or inside it (both absolute and normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _daemon_set(
    rollout: Rollout, checksum: str, host: _Volumes, datastore: _Volumes, reads_nodes: bool
) -> dict[str, Any]:
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        *host.mounts,
        *datastore.mounts,
    ]
    volumes = [
        {"name": "config", "configMap": {"name": "netc-config"}},
        *host.volumes,
        *datastore.volumes,
    ]
    capabilities = [*CAPABILITIES, *([LOAD_MODULES] if rollout.load_modules else [])]
    container = {
        "name": "agent",
        "image": rollout.image,
        "imagePullPolicy": rollout.pull_policy,
        "args": [
            "agent",
            "--config",
            f"{CONFIG_DIR}/{CONFIG_KEY}",
            "--node-name",
            "$(NODE_NAME)",
            "--cni-conf-dir",
            rollout.cni_conf_dir,
            "--cni-bin-dir",
            rollout.cni_bin_dir,
            "--socket",
            rollout.warm_socket,
            "--interval",
            str(rollout.interval),
            "--health-port",
            str(HEALTH_PORT),
            *host.args,
            *datastore.args,
            *(["--log-format", rollout.log_format] if rollout.log_format != "text" else []),
        ],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "securityContext": {
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            "capabilities": {"add": capabilities, "drop": ["ALL"]},
        },
        "readinessProbe": {
            "httpGet": {"host": "127.0.0.1", "port": HEALTH_PORT, "path": "/readyz"},
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"host": "127.0.0.1", "port": HEALTH_PORT, "path": "/livez"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "volumeMounts": mounts,
    }
    spec = {
        "hostNetwork": True,
        **({"hostPID": True} if rollout.host_pid else {}),
        "dnsPolicy": "ClusterFirstWithHostNet",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
        "terminationGracePeriodSeconds": 10,
        "containers": [container],
        "volumes": volumes,
    }
    if reads_nodes:  # the token is mounted for this pod only, not for the account's every use
        spec |= {"serviceAccountName": AGENT, "automountServiceAccountToken": True}
    else:
        spec["automountServiceAccountToken"] = False
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(AGENT, rollout),
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": dict(LABELS),
                    "annotations": {CHECKSUM_ANNOTATION: checksum},
                },
                "spec": spec,
            },
        },
    }


def render_manifests(documents: Sequence[dict[str, Any]]) -> str:
    """One YAML stream, keys in their natural order, multi-line strings as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """The safe dumper, writing the ConfigMap's JSON as a readable `|` block."""

    def literal(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    Dumper.add_representer(str, literal)
    return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True)
