"""The manifests of `netc build --target kubernetes`, checked offline.

Every object validates against the Kubernetes 1.28 schemas
(`kubernetes-validate --strict`, bundled, no network), the embedded
configuration parses back to the same cluster, and a 1000-node cluster stays
within a ConfigMap's 1 MiB.
"""

import json

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from compiler import datatypes, ir_codec, kubernetes
from compiler.ir import Membership
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from runtime import agent
from runtime.cli import main
from tests.support import ROOT, compile_example, portable

ROLLOUT = kubernetes.Rollout("registry.example/netc:0.1.0", "Always")


def _documents(example="cluster", rollout=ROLLOUT):
    compilation, _ = compile_example(example)
    return kubernetes.manifests(compilation.clusters, compilation.networks, rollout)


def _daemon_set(documents):
    return next(d for d in documents if d["kind"] == "DaemonSet")


@pytest.mark.parametrize("example", ["cluster", "pods"])
def test_the_manifests_match_their_golden_file(golden, example):
    golden.check(
        f"golden/kubernetes/{example}.yaml", kubernetes.render_manifests(_documents(example))
    )


@pytest.mark.parametrize("example", ["cluster", "pods", "multi", "etcd-cluster"])
def test_every_object_validates_strictly_against_kubernetes_1_28(example):
    for document in yaml.safe_load_all(kubernetes.render_manifests(_documents(example))):
        kubernetes_validate.validate(document, "1.28.0", strict=True)


@pytest.mark.parametrize("example", ["cluster", "etcd-cluster"])
def test_the_embedded_configuration_parses_back_to_the_same_cluster(example):
    compilation, _ = compile_example(example)
    config_map = next(d for d in _documents(example) if d["kind"] == "ConfigMap")
    clusters, networks = kubernetes.read_config(json.loads(config_map["data"]["netc.json"]))
    assert clusters == [portable(c) for c in compilation.clusters]
    assert networks == [portable(n) for n in compilation.networks]
    assert [c.membership.source for c in clusters] == [
        "etcd" if example == "etcd-cluster" else "static"
    ]


def test_the_daemon_set_runs_one_privileged_enough_agent_per_node():
    spec = _daemon_set(_documents())["spec"]
    pod = spec["template"]["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1},
    }
    assert pod["hostNetwork"] and pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["automountServiceAccountToken"] is False
    (agent,) = pod["containers"]
    assert (agent["image"], agent["imagePullPolicy"]) == ("registry.example/netc:0.1.0", "Always")
    security = agent["securityContext"]
    assert (security["privileged"], security["readOnlyRootFilesystem"]) == (False, True)
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["capabilities"] == {
        "add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_CHROOT"],
        "drop": ["ALL"],
    }
    assert "hostPID" not in pod, "the agent works in its own mount namespace"
    assert not spec["template"]["metadata"]["annotations"].keys() - {
        kubernetes.CHECKSUM_ANNOTATION
    }, "no AppArmor annotation: the runtime's default profile"
    # what it writes on the node is mounted from the node at the same path
    mounts = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}
    assert mounts == {
        "/etc/netc/config": "config",
        "/etc/cni/net.d": "cni-conf",
        "/opt/cni/bin": "cni-bin",
        "/run/netc": "run",
        "/var/lib/cni/networks": "ipam-0",
        "/run/xtables.lock": "xtables-lock",
        "/host/proc/sys/net": "proc-sys-net",
    }
    volumes = {v["name"]: v.get("hostPath") for v in pod["volumes"]}
    assert volumes["xtables-lock"] == {"path": "/run/xtables.lock", "type": "FileOrCreate"}
    assert volumes["proc-sys-net"] == {"path": "/proc/sys/net", "type": "Directory"}
    assert all(
        volumes[name]["path"] == path
        for path, name in mounts.items()
        if name not in ("config", "proc-sys-net")
    )
    assert agent["args"][-2:] == ["--proc-sys", "/host/proc/sys"]
    assert "--socket" in agent["args"]
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert pod["automountServiceAccountToken"] is False, "no API token where none is used"
    assert "serviceAccountName" not in pod


def test_each_networks_directories_are_mounted_once_and_not_below_another():
    source = (
        (ROOT / "examples" / "cluster.netdsl")
        .read_text()
        .replace("network pods {", 'network pods {\n    state-dir "/run/netc/pods"')
        .replace("    ipam {\n", '    ipam {\n        data-dir "/srv/ipam"\n')
    )
    extra = (
        'network batch {\n    priority 30\n    state-dir "/var/run/batch"\n'
        "    bridge cni1 { gateway }\n"
        '    ipam { subnet 10.99.0.0/24; node-local; data-dir "/srv/ipam" }\n}\n'
    )
    compilation = compile_sources([SourceFile("cluster.netdsl", source + extra)])
    assert compilation.ok, compilation.diagnostics
    rollout = kubernetes.Rollout("netc", load_modules=True)
    documents = kubernetes.manifests(compilation.clusters, compilation.networks, rollout)
    for document in documents:
        kubernetes_validate.validate(document, "1.28.0", strict=True)
    pod = _daemon_set(documents)["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    paths = [m["mountPath"] for m in agent["volumeMounts"]]
    assert paths == [
        "/etc/netc/config",
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/run/netc",
        "/var/run/batch",
        "/srv/ipam",
        "/run/xtables.lock",
        "/host/proc/sys/net",
        "/lib/modules",
    ]
    assert agent["volumeMounts"][-1] == {
        "name": "modules",
        "mountPath": "/lib/modules",
        "readOnly": True,
    }
    assert agent["securityContext"]["capabilities"]["add"][-1] == "SYS_MODULE"


def test_a_change_of_the_configuration_changes_the_checksum_and_rolls_the_agents():
    source = (ROOT / "examples" / "cluster.netdsl").read_text()

    def checksum(text):
        compilation = compile_sources([SourceFile("cluster.netdsl", text)])
        documents = kubernetes.manifests(compilation.clusters, compilation.networks, ROLLOUT)
        template = _daemon_set(documents)["spec"]["template"]
        return template["metadata"]["annotations"][kubernetes.CHECKSUM_ANNOTATION]

    assert checksum(source) == checksum("# a comment changes nothing\n" + source)
    assert checksum(source) != checksum(source.replace("block 3", "block 7"))


def test_a_thousand_nodes_fit_in_a_config_map():
    nodes = "\n".join(
        f"    node n{i} {{ address 10.{i // 250}.{i % 250}.1/8; block {i} }}" for i in range(1000)
    )
    text = (
        f"cluster big {{\n    pod-cidr 172.16.0.0/12\n{nodes}\n}}\n"
        "network pods {\n    bridge cni0 { gateway }\n    ipam { cluster big }\n}\n"
    )
    compilation = compile_sources([SourceFile("big.netdsl", text)])
    assert compilation.ok, compilation.diagnostics[:3]
    config = kubernetes.render_config(compilation.clusters, compilation.networks)
    assert len(config.encode()) < 1024 * 1024 * 0.6, len(config.encode())


def test_netc_build_target_kubernetes_prints_one_yaml_stream():
    result = CliRunner().invoke(
        main,
        [
            "build",
            "--target",
            "kubernetes",
            "--image",
            "x/netc:1",
            str(ROOT / "examples" / "cluster.netdsl"),
        ],
    )
    assert result.exit_code == 0, result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == ["Namespace", "ConfigMap", "DaemonSet"]


def test_the_manifests_checked_in_a_directory_are_called_what_they_are(tmp_path):
    """`--check` of the manifests said "1 conflists up to date"."""
    arguments = [
        "build",
        "--target",
        "kubernetes",
        "--out",
        str(tmp_path),
        str(ROOT / "examples" / "cluster.netdsl"),
    ]
    assert CliRunner().invoke(main, arguments).exit_code == 0
    result = CliRunner().invoke(main, [*arguments, "--check"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "1 manifest up to date\n"


FIXED = "network pods {\n    bridge cni0 { gateway }\n    ipam { subnet 10.88.0.0/16%s }\n}\n"


def _build_kubernetes(tmp_path, text):
    (tmp_path / "pods.netdsl").write_text(text)
    return CliRunner().invoke(main, ["build", "--target", "kubernetes", "pods.netdsl"])


def test_a_network_with_one_subnet_for_every_node_is_refused(tmp_path, golden, monkeypatch):
    """Every node would hand out 10.88.0.0/16: the same pod addresses on several nodes."""
    monkeypatch.chdir(tmp_path)
    result = _build_kubernetes(tmp_path, FIXED % "")
    assert result.exit_code == 1 and result.stdout == ""
    golden.check("golden/kubernetes/one-subnet-for-every-node.txt", result.stderr)


def test_a_node_local_network_is_rolled_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _build_kubernetes(tmp_path, FIXED % "; node-local")
    assert result.exit_code == 0, result.output
    config = next(d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "ConfigMap")
    (network,) = json.loads(config["data"]["netc.json"])["networks"]
    assert network["ipam"]["node_local"] is True


def test_the_agents_write_a_networks_chained_plugins_after_netc_cni(tmp_path, monkeypatch):
    """`chain` travels in the ConfigMap, and each agent's conflist runs it."""
    monkeypatch.chdir(tmp_path)
    text = (
        FIXED.replace(
            "\n}",
            '\n    chain tuning { sysctl { "net.core.somaxconn" "1024" } }\n    chain firewall\n}',
        )
        % "; node-local"
    )
    result = _build_kubernetes(tmp_path, text)
    assert result.exit_code == 0, result.output
    config = next(d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "ConfigMap")
    _, networks = kubernetes.read_config(json.loads(config["data"]["netc.json"]))
    agent.write_conflists(str(tmp_path / "net.d"), networks)
    (conflist,) = (tmp_path / "net.d").glob("*.conflist")
    assert json.loads(conflist.read_text())["plugins"][1:] == [
        {"type": "tuning", "sysctl": {"net.core.somaxconn": "1024"}},
        {"type": "firewall"},
    ]


def test_node_local_contradicts_a_cluster():
    cluster = (ROOT / "examples" / "cluster.netdsl").read_text().split("network pods")[0]
    text = cluster + "network pods {\n    bridge cni0\n    ipam { cluster prod; node-local }\n}\n"
    compilation = compile_sources([SourceFile("c.netdsl", text)])
    assert [d.code for d in compilation.diagnostics] == ["E106"]


def _etcd_cluster():
    """The cluster example with etcd membership and no node statement (the language's own
    example, examples/etcd-cluster.netdsl, is golden-tested with the examples)."""
    compilation, _ = compile_example("cluster")
    (cluster,) = compilation.clusters
    membership = Membership(
        "etcd",
        ("https://10.0.0.1:2379", "https://10.0.0.2:2379"),
        ca_file="/etc/netc/etcd/ca.crt",
        cert_file="/etc/netc/etcd/client.crt",
        key_file="/etc/netc/etcd/client.key",
    )
    return [datatypes.replace(cluster, nodes=(), membership=membership)], compilation.networks


def test_an_etcd_cluster_mounts_the_clients_files_from_the_secret_and_remembers_blocks():
    clusters, networks = _etcd_cluster()
    documents = kubernetes.manifests(clusters, networks, ROLLOUT)
    for document in yaml.safe_load_all(kubernetes.render_manifests(documents)):
        kubernetes_validate.validate(document, "1.28.0", strict=True)
    pod = _daemon_set(documents)["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    assert mounts["/etc/netc/etcd"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/netc/etcd"]["name"]]["secret"] == {
        "secretName": "netc-etcd",
        "defaultMode": 0o400,
        "items": [
            {"key": "ca.crt", "path": "ca.crt"},
            {"key": "tls.crt", "path": "client.crt"},
            {"key": "tls.key", "path": "client.key"},
        ],
    }
    assert volumes[mounts["/var/lib/netc"]["name"]]["hostPath"]["path"] == "/var/lib/netc"
    assert agent["args"][-2:] == ["--memory-dir", "/var/lib/netc"]


def test_the_config_map_of_an_etcd_cluster_holds_no_node():
    clusters, networks = _etcd_cluster()
    config = next(
        d for d in kubernetes.manifests(clusters, networks, ROLLOUT) if d["kind"] == "ConfigMap"
    )["data"]["netc.json"]
    (cluster,), _ = kubernetes.read_config(json.loads(config))
    assert cluster.nodes == () and cluster.membership.endpoints == clusters[0].membership.endpoints
    assert "node-a" not in config


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda c: c.update(name="../../tmp/pwn"), "not a valid cluster name"),
        (
            lambda c: c["nodes"].append({"name": "Node_X", "addresses": [], "subnets": []}),
            "is not a Kubernetes node name",
        ),
        (lambda c: c["membership"].update(endpoints=["http://evil.example/wipe"]), "has a path"),
        (lambda c: c["membership"].update(endpoints=["https://10.0.0.1"]), "is not written as"),
        (lambda c: c["membership"].update(prefix="/"), "is not a key prefix"),
        (lambda c: c["membership"].update(prefix="/a/../b"), "is not a key prefix"),
        (lambda c: c["membership"].update(lease=0), "is not from 1"),
        (lambda c: c["membership"].update(ca_file="etc/ca.crt"), "not a normal absolute path"),
        (lambda c: c["membership"].update(cert_file=None), "certificate without its key"),
        (lambda c: c["membership"].update(source="gossip"), "is not one of"),
        (lambda c: c["membership"].update(source="kubernetes"), "takes no etcd setting"),
    ],
)
def test_a_configuration_whose_cluster_netc_could_not_have_written_is_refused(change, why):
    """The ConfigMap is data anyone allowed to edit it may have written: a cluster's name
    becomes paths and datastore keys, its membership where the agent connects."""
    compilation, _ = compile_example("etcd-cluster")
    document = kubernetes.config_document(compilation.clusters, compilation.networks)
    assert kubernetes.read_config(json.loads(json.dumps(document)))  # as written: taken
    change(document["clusters"][0])
    with pytest.raises(ir_codec.FormatError, match=why):
        kubernetes.read_config(document)


def _kubernetes_cluster():
    """The cluster example with its members from the Kubernetes API."""
    compilation, _ = compile_example("cluster")
    (cluster,) = compilation.clusters
    return (
        [datatypes.replace(cluster, nodes=(), membership=Membership("kubernetes"))],
        compilation.networks,
    )


def test_a_kubernetes_cluster_gets_a_service_account_allowed_only_what_the_agent_does():
    clusters, networks = _kubernetes_cluster()
    documents = kubernetes.manifests(clusters, networks, ROLLOUT)
    for document in yaml.safe_load_all(kubernetes.render_manifests(documents)):
        kubernetes_validate.validate(document, "1.28.0", strict=True)
    assert [d["kind"] for d in documents] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
    ]
    account, role, binding = documents[1:4]
    assert account["metadata"] == {
        "name": "netc-node",
        "namespace": "netc-system",
        "labels": kubernetes.LABELS,
    }
    assert account["automountServiceAccountToken"] is False
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]}
    ]
    assert binding["roleRef"]["name"] == "netc-node"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "netc-node", "namespace": "netc-system"}
    ]
    pod = _daemon_set(documents)["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("netc-node", True)
    (agent,) = pod["containers"]
    assert "--memory-dir" not in agent["args"], "nothing to remember: the Node holds it"
    assert kubernetes.MEMORY_DIR not in {m["mountPath"] for m in agent["volumeMounts"]}


def test_the_service_account_is_in_the_namespace_the_agents_run_in():
    clusters, networks = _kubernetes_cluster()
    rollout = datatypes.replace(ROLLOUT, namespace="kube-network")
    documents = kubernetes.manifests(clusters, networks, rollout)
    binding = next(d for d in documents if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "kube-network"
    assert (
        next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]["namespace"]
        == "kube-network"
    )


@pytest.mark.parametrize(
    "prefix", ["netc.dev", "kubernetes.io/", "node.k8s.io/", "Netc.dev/", "a/b/"]
)
def test_a_kubernetes_membership_read_from_a_configuration_has_a_prefix_netc_takes(prefix):
    clusters, networks = _kubernetes_cluster()
    document = kubernetes.config_document(clusters, networks)
    assert kubernetes.read_config(json.loads(json.dumps(document)))  # as written: taken
    document["clusters"][0]["membership"]["annotation_prefix"] = prefix
    with pytest.raises(ir_codec.FormatError, match="annotation prefix"):
        kubernetes.read_config(document)


def test_the_host_pid_namespace_is_an_option_for_kernels_without_connection_pidfds():
    assert "hostPID" not in _daemon_set(_documents())["spec"]["template"]["spec"]
    rollout = datatypes.replace(ROLLOUT, host_pid=True)
    documents = _documents(rollout=rollout)
    for document in yaml.safe_load_all(kubernetes.render_manifests(documents)):
        kubernetes_validate.validate(document, "1.28.0", strict=True)
    assert _daemon_set(documents)["spec"]["template"]["spec"]["hostPID"] is True


def test_the_agents_have_a_liveness_and_a_readiness_probe_on_the_nodes_loopback():
    (agent,) = _daemon_set(_documents())["spec"]["template"]["spec"]["containers"]
    probes = {kind: agent[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes == {
        "livenessProbe": {"host": "127.0.0.1", "port": kubernetes.HEALTH_PORT, "path": "/livez"},
        "readinessProbe": {"host": "127.0.0.1", "port": kubernetes.HEALTH_PORT, "path": "/readyz"},
    }
    assert agent["args"][agent["args"].index("--health-port") + 1] == str(kubernetes.HEALTH_PORT)
    assert agent["livenessProbe"]["failureThreshold"] == 3


def test_the_agents_log_json_when_asked_and_text_by_default():
    (agent,) = _daemon_set(_documents())["spec"]["template"]["spec"]["containers"]
    assert "--log-format" not in agent["args"]
    documents = _documents(rollout=datatypes.replace(ROLLOUT, log_format="json"))
    for document in yaml.safe_load_all(kubernetes.render_manifests(documents)):
        kubernetes_validate.validate(document, "1.28.0", strict=True)
    (agent,) = _daemon_set(documents)["spec"]["template"]["spec"]["containers"]
    assert agent["args"][-2:] == ["--log-format", "json"]
