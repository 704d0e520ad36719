"""The node agent's logic that needs no root: its configuration, its node, its files, its probe.

What needs the kernel (the node's plan, the warm server, pods) is proven
through containerd in test_on_nodes.py; here the agent meets the failures
that must stop it before it touches the node, and its file handling.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import pytest
from prometheus_client.parser import text_string_to_metric_families

from compiler import emit, kubernetes
from compiler.cluster import networks_for_node
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from runtime import events, iptables
from runtime.agent import (
    Agent,
    Options,
    Snapshot,
    Written,
    choose_iptables,
    install_plugin,
    left_on_node,
    remove_socket,
    serve_health,
    write_conflists,
)
from runtime.metrics import Metrics
from tests.membership.agents import until
from tests.rollout.kubelet import ConfigVolume
from tests.support import ROOT

CLUSTER = (ROOT / "examples" / "cluster.netdsl").read_text()
"""Three nodes, node-a to node-c, and the network `pods` drawing from their blocks."""
NO_NODE = "/nonexistent/netns"
"""Every agent here works "in" this namespace: should one ever get past its checks, its
apply fails to enter it, rather than touch the namespace the tests run in."""


def _networks(text: str = CLUSTER):
    compilation = compile_sources([SourceFile("cluster.netdsl", text)])
    assert compilation.ok, compilation.diagnostics
    return compilation.clusters, compilation.networks


def _config(text: str = CLUSTER) -> dict[str, str]:
    """A ConfigMap's data as `netc build --target kubernetes` makes it."""
    return {kubernetes.CONFIG_KEY: kubernetes.render_config(*_networks(text))}


def _options(tmp_path: Path, config: Path, node: str = "node-a") -> Options:
    return Options(
        str(config),
        node,
        str(tmp_path / "net.d"),
        str(tmp_path / "bin"),
        str(tmp_path / "cni.sock"),
        health_port=None,
        node_netns=NO_NODE,
    )


def _said(written: list[Written]) -> list[str]:
    return [w.line for w in written]


def _nothing_written(tmp_path: Path) -> bool:
    return not (tmp_path / "net.d").exists() and not (tmp_path / "bin").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        ("{not json", "Expecting property name"),
        ('{"format": 99}', "not a netc configuration of format 1"),
    ],
)
def test_a_configuration_it_cannot_read_leaves_it_not_ready_and_the_node_untouched(
    tmp_path, content, reason
):
    config = tmp_path / "netc.json"
    if content is not None:
        config.write_text(content)
    agent = Agent(_options(tmp_path, config))
    agent.converge()
    assert not agent.ready
    assert reason in agent.problem
    if content is None or "{not" in content:
        assert str(config) in agent.problem
    assert _nothing_written(tmp_path)


def test_what_is_hashed_is_what_is_applied_though_the_file_is_swapped_between(tmp_path):
    config = tmp_path / "netc.json"
    first = _config()[kubernetes.CONFIG_KEY]
    config.write_text(first)
    read = Snapshot.of(str(config))
    config.write_text(_config(CLUSTER.replace("node-c", "node-x"))[kubernetes.CONFIG_KEY])
    clusters, _ = read.parsed()
    assert read.digest == hashlib.sha256(first.encode()).hexdigest()
    assert [node.name for node in clusters[0].nodes] == ["node-a", "node-b", "node-c"]
    config.unlink()
    assert Snapshot.of(str(config)).digest is None


def test_a_node_missing_from_the_cluster_is_not_ready_and_gets_no_conflist(tmp_path):
    volume = ConfigVolume(tmp_path / "config")
    volume.write(_config())
    agent = Agent(_options(tmp_path, volume.directory / kubernetes.CONFIG_KEY, "node-z"))
    agent.converge()
    assert not agent.ready
    assert "node-z" in agent.problem
    assert _nothing_written(tmp_path)


def test_conflists_are_written_and_netcs_stale_ones_removed_never_others(tmp_path):
    clusters, networks = _networks()
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "05-other.conflist").write_text('{"name": "other"}')  # another plugin's
    built = networks_for_node(networks, clusters, "node-a")
    assert _said(write_conflists(str(conf_dir), built)) == [f"wrote {conf_dir}/10-pods.conflist"]
    written = json.loads((conf_dir / "10-pods.conflist").read_text())
    assert written == emit.conflist(built[0], "netc")
    assert write_conflists(str(conf_dir), built) == []  # nothing to do, nothing said

    renamed = networks_for_node(
        _networks(CLUSTER.replace("network pods {", "network pods {\n    priority 20"))[1],
        clusters,
        "node-a",
    )
    assert _said(write_conflists(str(conf_dir), renamed)) == [
        f"removed stale {conf_dir}/10-pods.conflist",
        f"wrote {conf_dir}/20-pods.conflist",
    ]
    assert sorted(p.name for p in conf_dir.glob("*.conflist")) == [
        "05-other.conflist",
        "20-pods.conflist",
    ]
    assert (conf_dir / "05-other.conflist").read_text() == '{"name": "other"}'


def test_a_conflist_someone_edited_is_left_when_netc_no_longer_wants_it(tmp_path):
    clusters, networks = _networks()
    conf_dir = tmp_path / "net.d"
    write_conflists(str(conf_dir), networks_for_node(networks, clusters, "node-a"))
    (conf_dir / "10-pods.conflist").write_text('{"edited": true}')
    (left,) = write_conflists(str(conf_dir), [])
    assert (left.line, left.network) == (f"left edited {conf_dir}/10-pods.conflist", "pods")
    assert (conf_dir / "10-pods.conflist").read_text() == '{"edited": true}'


def test_the_plugin_is_installed_by_rename_never_rewritten_in_place(tmp_path):
    bin_dir = tmp_path / "bin"
    target = bin_dir / "netc-cni"
    assert install_plugin(str(bin_dir), b"#!/bin/sh\n# old\n") == str(target)
    with open(target, "rb") as running:  # what a runtime executing the old one holds
        assert install_plugin(str(bin_dir), b"#!/bin/sh\n# new\n") == str(target)
        assert running.read() == b"#!/bin/sh\n# old\n", "the old file was rewritten in place"
    assert target.read_bytes() == b"#!/bin/sh\n# new\n"
    assert target.stat().st_mode & 0o777 == 0o755
    inode = target.stat().st_ino
    assert install_plugin(str(bin_dir), b"#!/bin/sh\n# new\n") is None  # the same: untouched
    assert target.stat().st_ino == inode
    assert [p.name for p in bin_dir.iterdir()] == ["netc-cni"], "a temporary file was left"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_readiness_endpoint_says_why_it_is_not_ready_and_it_is_live_all_the_same(tmp_path):
    agent = Agent(_options(tmp_path, tmp_path / "missing.json"))
    endpoint = serve_health(agent, 0)
    try:
        assert endpoint.bound.wait(10)
        port = endpoint.port
        assert _get(port, "/readyz") == (503, "starting\n")
        agent.converge()
        status, body = _get(port, "/readyz")
        assert status == 503 and "cannot read the configuration" in body
        assert _get(port, "/livez") == (200, "ok\n")
        assert _get(port, "/healthz") == (200, "ok\n")
        assert _get(port, "/nothing")[0] == 404
        agent.ready = True  # what a converge that went through sets (test_on_nodes.py)
        assert _get(port, "/readyz") == (200, "ok\n")
    finally:
        endpoint.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lines(log: IO[str], count: int) -> list[str]:
    """The next `count` lines of an agent's log, but its health endpoint's: the endpoint is a
    thread of its own, whose line comes at any point."""
    lines: list[str] = []
    while len(lines) < count:
        line = log.readline()
        if not line.startswith("netc agent: health endpoint on "):
            lines.append(line)
    return lines


def _answers(port: int, path: str) -> int:
    """The status of GET `path` once the endpoint listens (it starts beside the agent's loop)."""
    assert until(lambda: _status_or_none(port, path) is not None, 10)
    return _get(port, path)[0]


def _status_or_none(port: int, path: str) -> int | None:
    try:
        return _get(port, path)[0]
    except urllib.error.URLError:
        return None


def test_the_agent_reads_a_new_configuration_at_once_and_stops_on_sigterm(tmp_path):
    """The kubelet's symlink swap of the ConfigMap volume is noticed (a log line names the
    new configuration), a failure already reported is not repeated, and SIGTERM ends the
    agent with status 0."""
    volume = ConfigVolume(tmp_path / "config")
    volume.write(_config())
    port = _free_port()
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "agent",
            "--config",
            str(volume.directory / kubernetes.CONFIG_KEY),
            "--node-name",
            "node-z",
            "--cni-conf-dir",
            str(tmp_path / "net.d"),
            "--cni-bin-dir",
            str(tmp_path / "bin"),
            "--socket",
            str(tmp_path / "cni.sock"),
            "--health-port",
            str(port),
            "--node-netns",
            NO_NODE,
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert agent.stderr is not None
    try:
        lines = _lines(agent.stderr, 2)
        assert lines[0].startswith("netc agent: configuration "), lines
        assert lines[1].startswith("netc agent: not ready: ") and "node-z" in lines[1], lines
        assert _answers(port, "/readyz") == 503
        assert _get(port, "/livez")[0] == 200
        volume.write(_config(CLUSTER.replace("block 3", "block 7")))  # still without node-z
        (said,) = _lines(agent.stderr, 1)
        assert said.startswith("netc agent: configuration ") and said != lines[0]
        agent.send_signal(signal.SIGTERM)
        rest = agent.stderr.read()
        assert agent.wait(30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert (
        f"stopped; nothing of netc's is on this node: no plugin in {tmp_path / 'bin'}, "
        f"no conflist of netc's in {tmp_path / 'net.d'}"
    ) in rest, rest
    assert "not ready" not in rest, "the same failure was reported again"
    assert os.path.isdir(tmp_path / "config")


def test_on_stop_it_says_what_stays_on_the_node(tmp_path):
    """What the stop message says is what the node holds."""
    options = _options(tmp_path, tmp_path / "netc.json")
    clusters, networks = _networks()
    plugin = tmp_path / "bin" / "netc-cni"
    assert left_on_node(options) == (
        f"stopped; nothing of netc's is on this node: no plugin in {tmp_path / 'bin'}, "
        f"no conflist of netc's in {tmp_path / 'net.d'}"
    )
    install_plugin(str(tmp_path / "bin"), b"#!/bin/sh\n")
    assert left_on_node(options) == (
        f"stopped; the plugin {plugin} stays; no conflist of netc's is in "
        f"{tmp_path / 'net.d'}, so no pod attaches through it"
    )
    write_conflists(str(tmp_path / "net.d"), networks_for_node(networks, clusters, "node-a"))
    assert left_on_node(options) == (
        f"stopped; the plugin {plugin} and 1 conflist of netc's in {tmp_path / 'net.d'} "
        "stay: pods attach through the cold path"
    )
    plugin.unlink()
    assert left_on_node(options) == (
        f"stopped; 1 conflist of netc's stays in {tmp_path / 'net.d'}, but no plugin is in "
        f"{tmp_path / 'bin'}: pods of its networks cannot attach until an agent installs it"
    )


def test_a_backend_chosen_by_netc_iptables_is_not_detected_and_reaches_the_server(
    monkeypatch, capfd
):
    """NETC_IPTABLES (read by `netc`'s command line) overrides the detection; the warm
    server the agent starts inherits the backend through its environment."""
    monkeypatch.delenv(iptables.BACKEND_VARIABLE, raising=False)
    iptables.use_backend("legacy")
    try:
        assert choose_iptables(NO_NODE) == "legacy"  # the namespace is never entered
        assert os.environ[iptables.BACKEND_VARIABLE] == "legacy"
    finally:
        iptables.use_backend(None)
    assert "netc agent: iptables backend legacy (NETC_IPTABLES)" in capfd.readouterr().err


def test_the_socket_is_removed_once_the_server_stopped_and_only_a_socket(tmp_path):
    path = tmp_path / "cni.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
    remove_socket(str(path))
    assert not path.exists()
    path.write_text("not a socket")
    remove_socket(str(path))
    remove_socket(str(tmp_path / "absent"))
    assert path.read_text() == "not a socket"


def _counted(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_call_report_of_the_warm_server_is_counted_with_its_labels():
    metrics = Metrics()
    report = {
        "command": "ADD",
        "code": 11,
        "seconds": 0.25,
        "locks": {"network": 0.0, "attachment": 0.125},
    }
    assert metrics.observe_report(json.dumps(report).encode() + b"\n")
    assert metrics.observe_report(json.dumps({**report, "command": "BOGUS", "code": 0}).encode())
    assert metrics.observe_report(b'{"refused": true}\n')
    counted = _counted(metrics)
    assert (
        counted[("netc_cni_calls_total", frozenset({("command", "ADD"), ("result", "try_again")}))]
        == 1
    )
    assert (
        counted[("netc_cni_calls_total", frozenset({("command", "other"), ("result", "ok")}))] == 1
    )
    assert (
        counted[
            (
                "netc_cni_call_duration_seconds_bucket",
                frozenset({("command", "ADD"), ("result", "try_again"), ("le", "0.25")}),
            )
        ]
        == 1
    )
    assert counted[("netc_cni_lock_wait_seconds_sum", frozenset({("lock", "attachment")}))] == 0.25
    assert counted[("netc_cni_handovers_refused_total", frozenset())] == 1


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'"ADD"',
        b"{}",
        b'{"refused": "yes"}',
        b'{"command": "ADD", "code": 42, "seconds": 0.1, "locks": {}}',
        b'{"command": "ADD", "code": true, "seconds": 0.1, "locks": {}}',
        b'{"command": "ADD", "code": "0", "seconds": 0.1, "locks": {}}',
        b'{"command": "ADD", "code": 0, "seconds": -1, "locks": {}}',
        b'{"command": "ADD", "code": 0, "seconds": NaN, "locks": {}}',
        b'{"command": "ADD", "code": 0, "seconds": 0.1, "locks": {"../etc": 0.1}}',
        b'{"command": "ADD", "code": 0, "seconds": 0.1, "locks": {"network": "x"}}',
        b'{"command": "ADD", "code": 0, "seconds": 0.1, "locks": []}',
    ],
)
def test_a_malformed_report_is_dropped_and_counts_nothing(line):
    metrics = Metrics()
    before = _counted(metrics)
    assert not metrics.observe_report(line)
    assert _counted(metrics) == before


def test_json_events_are_one_object_per_line_and_text_is_unchanged(capfd):
    try:
        events.use_format("json", "node-a")
        events.log(
            "wrote /etc/cni/net.d/10-pods.conflist",
            "wrote",
            network="pods",
            path="/etc/cni/net.d/10-pods.conflist",
        )
        events.log("not ready: boom", "not ready", trace="Traceback ...\n  line\n")
        events.relay(b"netc-cni server listening on /run/netc/cni.sock\n")
        events.use_format("text")
        events.log("ready", "ready")
    finally:
        events.use_format("text")
    *objects, text = capfd.readouterr().err.splitlines()
    wrote, failed, relayed = (json.loads(line) for line in objects)
    assert {k: v for k, v in wrote.items() if k != "time"} == {
        "event": "wrote",
        "detail": "wrote /etc/cni/net.d/10-pods.conflist",
        "node": "node-a",
        "network": "pods",
        "path": "/etc/cni/net.d/10-pods.conflist",
    }
    assert failed["traceback"] == "Traceback ...\n  line\n"
    assert relayed["event"] == "warm server"
    assert relayed["detail"] == "netc-cni server listening on /run/netc/cni.sock"
    assert text == "netc agent: ready"
    with pytest.raises(ValueError, match="log format 'yaml'"):
        events.use_format("yaml")
