"""Whoever edits the ConfigMap can neither lead the agent's files out
of their places nor make the agent crash.

The agent decodes the ConfigMap's networks and, as root on every node,
takes locks and writes markers under `<state-dir>/<network>/` and the
conflist `<conf-dir>/NN-<network>.conflist`.  A network name or a directory
crafted to climb out (`x/../../OUTSIDE/pwn`) must be refused as the plugin
refuses it in a conflist: the agent stays not ready, says why, and writes
nothing anywhere.  The agent here works in a lab's node namespace, on the
lab's directories.

A malformed ConfigMap -- a string where an object belongs, JSON nested
100,000 deep, any value anywhere -- leaves the agent not ready with a
message; it never raises out of its converge (which would restart it in a
loop on every node).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import kubernetes
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from runtime.agent import Agent, Options, Snapshot, write_conflists
from runtime.outdir import InTheWay, Output, UnsafeName, plan_directory
from tests.kernel import networks
from tests.kernel.lab import Lab

Edit = Callable[[dict[str, Any], Path], None]


def _name(network: dict[str, Any], tmp: Path) -> None:
    network["name"] = "x/../../OUTSIDE/pwn"


def _state_dir(network: dict[str, Any], tmp: Path) -> None:
    network["state_dir"] = f"{tmp}/state/../OUTSIDE"


def _data_dir(network: dict[str, Any], tmp: Path) -> None:
    network["ipam"]["data_dir"] = "OUTSIDE"


def _reserved(network: dict[str, Any], tmp: Path) -> None:
    network["name"] = "hostports"


def _bridge(network: dict[str, Any], tmp: Path) -> None:
    network["bridge"]["name"] = "../../../../x"


def _configmap(lab: Lab, edit: Edit) -> Path:
    """The ConfigMap's file as `netc build --target kubernetes` writes it, then `edit`ed."""
    source = networks.FULL.replace("{state}", str(lab.tmp / "state")).replace(
        "{data}", str(lab.tmp / "ipam")
    )
    compilation = compile_sources([SourceFile("lab.netdsl", source)])
    document = json.loads(kubernetes.render_config([], compilation.networks))
    edit(document["networks"][0], lab.tmp)
    path = lab.tmp / "netc.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_name, "is not a valid CNI network name"),
        (_state_dir, "is not a normal absolute path"),
        (_data_dir, "is not a normal absolute path"),
        (_bridge, "contains a character the kernel refuses"),
        (_reserved, "is reserved"),
    ],
    ids=["name", "state-dir", "data-dir", "bridge", "reserved-name"],
)
def test_a_crafted_configmap_leaves_the_agent_not_ready_and_writes_nothing(lab, edit, reason):
    config = _configmap(lab, edit)
    agent = Agent(
        Options(
            str(config),
            "node",
            str(lab.tmp / "net.d"),
            str(lab.tmp / "bin"),
            str(lab.tmp / "cni.sock"),
            health_port=None,
            node_netns=lab.node,
        )
    )
    try:
        agent.converge()
    finally:
        agent._stop_server()
    assert not agent.ready
    assert reason in agent.problem
    assert sorted(p.name for p in lab.tmp.iterdir()) == ["netc.json"], "the agent wrote files"


def test_the_output_directory_refuses_a_name_that_is_not_a_plain_file_name(tmp_path):
    """The last line of defence, whatever the caller checked: no name climbs out of --out."""
    directory = tmp_path / "net.d"
    for name in ["../OUTSIDE.conflist", "a/../../OUTSIDE.conflist", "/tmp/OUTSIDE", "a//b", "."]:
        with pytest.raises(UnsafeName):
            plan_directory(str(directory), {name: Output("pods", "{}")})
    assert plan_directory(str(directory), {"node-a/10-pods.conflist": Output("pods", "{}")})
    assert list(tmp_path.iterdir()) == []


NO_NODE = "/nonexistent/netns"
"""An agent that got past its checks would fail to enter this, not touch the test's namespace."""


@functools.cache
def _document_text() -> str:
    source = networks.FULL.replace("{state}", "/nonexistent/state").replace(
        "{data}", "/nonexistent/ipam"
    )
    return kubernetes.render_config(
        [], compile_sources([SourceFile("lab.netdsl", source)]).networks
    )


def _document() -> dict[str, Any]:
    """A ConfigMap's document as `netc build --target kubernetes` makes it (a fresh copy)."""
    return json.loads(_document_text())


def _agent(directory: Path) -> Agent:
    return Agent(
        Options(
            str(directory / "netc.json"),
            "node",
            str(directory / "net.d"),
            str(directory / "bin"),
            str(directory / "cni.sock"),
            health_port=None,
            node_netns=NO_NODE,
        )
    )


def _converge(tmp_path: Path, text: str) -> Agent:
    (tmp_path / "netc.json").write_text(text)
    agent = _agent(tmp_path)
    agent.converge()
    return agent


def _with(change: Callable[[dict[str, Any]], None]) -> str:
    document = _document()
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            _with(lambda d: d["networks"][0].update(bridge="notanobject")),
            "expected an object for Bridge, found str",
        ),
        ('{"format": 1, "networks": [' + "[" * 100_000 + "]" * 100_000 + "]}", "nested too deeply"),
        (_with(lambda d: d.update(clusters=5)), "must be lists"),
        (
            _with(lambda d: d["networks"][0]["ipam"].update(subnets=[5])),
            "expected an object for Subnet, found int",
        ),
        (
            _with(lambda d: d["networks"][0]["ipam"].update(subnets="10.0.0.0/24")),
            "expected a list, found str",
        ),
    ],
    ids=["bridge-string", "deep", "clusters-number", "subnet-number", "subnets-string"],
)
def test_a_malformed_configmap_leaves_the_agent_not_ready_with_the_reason(tmp_path, text, reason):
    agent = _converge(tmp_path, text)
    assert not agent.ready
    assert reason in agent.problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netc.json"]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value sits at."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
PLACES = _paths(_document())


@pytest.fixture(scope="module")
def fuzzed_agent(tmp_path_factory: pytest.TempPathFactory) -> Agent:
    """One agent for every example (building its plugin artifact takes 0.1 s)."""
    return _agent(tmp_path_factory.mktemp("fuzzed"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(PLACES[1:]), value=JSON_VALUES)
def test_no_value_anywhere_in_the_configmap_makes_the_agent_raise(fuzzed_agent, place, value):
    document = _document()
    parent = document
    for step in place[:-1]:
        parent = parent[step]
    parent[place[-1]] = value
    content = json.dumps(document).encode()
    fuzzed_agent.converge(Snapshot(fuzzed_agent.options.config, content, str(hash(content))))
    assert not fuzzed_agent.ready and fuzzed_agent.problem


def test_the_agent_never_overwrites_a_conflist_netc_did_not_write(tmp_path):
    """Another plugin's file that happens to bear netc's name stays, and the agent says so."""
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    foreign = conf_dir / "10-labnet.conflist"
    foreign.write_text('{"name": "another plugin\'s"}')
    networks = kubernetes.read_config(_document())[1]
    with pytest.raises(InTheWay, match=r"10-labnet\.conflist: netc did not write it"):
        write_conflists(str(conf_dir), networks)
    assert foreign.read_text() == '{"name": "another plugin\'s"}'
    assert sorted(p.name for p in conf_dir.iterdir()) == ["10-labnet.conflist"]
