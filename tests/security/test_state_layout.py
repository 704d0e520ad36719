"""A network cannot take netc's own places in the state directory.

`<state-dir>/<network>/` is each network's; `<state-dir>/hostports/` holds
the node's host-port claims and `/run/netc/cni.sock` is the warm server's
default socket.  A network named `hostports` took the claims' lock as its
own and every ADD with a port failed with code 999; one whose state
directory is its data directory failed every ADD and DEL with code 999, so
runtimes retried its DELs for ever.  Both are invalid configurations (code
7), refused before anything is written, as the compiler refuses their
source (E101, E108).  The conflists here are made by hand, their digests
matching, as someone able to write /etc/cni/net.d or the ConfigMap could.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compiler import ir_codec
from tests.faults import calls
from tests.kernel import networks
from tests.kernel.lab import Lab

BAD_CONFIG = 7


def _hand_made(lab: Lab, change: Callable[[dict[str, Any]], None]) -> Path:
    """The lab network's conflist with its compiled network changed and the digest made to match."""
    document = json.loads(lab.network(networks.FULL).read_text())
    network = document["plugins"][0]["netc"]["network"]
    change(network)
    document["name"] = network["name"]
    document["plugins"][0]["netc"]["digest"] = ir_codec.digest(network)
    path = lab.tmp / "hand-made.conflist"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("name", ["hostports", "cni.sock"])
def test_a_network_named_like_netcs_own_files_is_refused(lab: Lab, name: str):
    conflist = lab.network(networks.FULL)
    lab.add(conflist, lab.pod("first"), ports=("8080:80",))
    reserved = _hand_made(lab, lambda network: network.update(name=name))
    pod = lab.pod("p")
    answer = calls.call(
        lab,
        calls.request(reserved, {"portMappings": calls.port_mappings(1)}),
        calls.environment("ADD", pod),
    )
    assert answer.error()["code"] == BAD_CONFIG
    assert "reserved" in answer.error()["msg"]
    assert sorted(p.name for p in (lab.tmp / "state").iterdir()) == ["hostports", "labnet"]
    lab.add(conflist, lab.pod("second"), ports=("8081:80",))  # the claims still work


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_a_state_directory_that_is_the_data_directory_is_refused(lab: Lab, command: str):
    shared = str(lab.tmp / "shared")
    conflist = _hand_made(
        lab,
        lambda network: (network.update(state_dir=shared), network["ipam"].update(data_dir=shared)),
    )
    answer = calls.call(lab, calls.request(conflist), calls.environment(command, lab.pod("p")))
    error = answer.error()
    assert error["code"] == BAD_CONFIG, error
    assert "data directory" in error["msg"]
    assert not Path(shared).exists()
