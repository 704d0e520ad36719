"""Issue 22, item 2: whoever edits the ConfigMap cannot make the agent write outside its places.

The agent decodes the ConfigMap's networks and, as root on every node,
takes locks and writes markers under `<state-dir>/<network>/` and the
conflist `<conf-dir>/NN-<network>.conflist`.  A network name or a directory
crafted to climb out (`x/../../OUTSIDE/pwn`) must be refused as the plugin
refuses it in a conflist: the agent stays not ready, says why, and writes
nothing anywhere.  The agent here works in a lab's node namespace, on the
lab's directories.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compiler import kubernetes
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from runtime.agent import Agent, Options
from runtime.outdir import Output, UnsafeName, plan_directory
from tests.kernel import networks
from tests.kernel.lab import Lab

Edit = Callable[[dict[str, Any], Path], None]


def _name(network: dict[str, Any], tmp: Path) -> None:
    network["name"] = "x/../../OUTSIDE/pwn"


def _state_dir(network: dict[str, Any], tmp: Path) -> None:
    network["state_dir"] = f"{tmp}/state/../OUTSIDE"


def _data_dir(network: dict[str, Any], tmp: Path) -> None:
    network["ipam"]["data_dir"] = "OUTSIDE"


def _bridge(network: dict[str, Any], tmp: Path) -> None:
    network["bridge"]["name"] = "../../../../x"


def _configmap(lab: Lab, edit: Edit) -> Path:
    """The ConfigMap's file as `netc build --target kubernetes` writes it, then `edit`ed."""
    source = networks.FULL.replace("{state}", str(lab.tmp / "state")).replace(
        "{data}", str(lab.tmp / "ipam"))
    compilation = compile_sources([SourceFile("lab.netdsl", source)])
    document = json.loads(kubernetes.render_config([], compilation.networks))
    edit(document["networks"][0], lab.tmp)
    path = lab.tmp / "netc.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(("edit", "reason"), [
    (_name, "is not a valid CNI network name"),
    (_state_dir, "is not a normal absolute path"),
    (_data_dir, "is not a normal absolute path"),
    (_bridge, "contains a character the kernel refuses"),
], ids=["name", "state-dir", "data-dir", "bridge"])
def test_a_crafted_configmap_leaves_the_agent_not_ready_and_writes_nothing(lab, edit, reason):
    config = _configmap(lab, edit)
    agent = Agent(Options(str(config), "node", str(lab.tmp / "net.d"), str(lab.tmp / "bin"),
                          str(lab.tmp / "cni.sock"), health_port=None, node_netns=lab.node))
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
