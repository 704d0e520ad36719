"""Calls of one network run side by side, and still never collide.

A call holds its attachment's lock for its whole work, and the network's
lock only to change what the network's pods share (docs/runtime.md,
"Locks").  What that must keep: two pods never get one address, pods added
at once to a fresh node set it up once (one bridge, each NAT chain and jump
once, no pod's jump lost to a second set-up), and an ADD and a DEL of one
attachment never interleave -- whichever runs last decides, and the pod is
either wholly there or wholly gone.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

import pytest

from compiler.planner.names import AttachmentNames
from runtime import netns
from runtime.cni import plugin
from tests.faults import calls
from tests.faults.state import assert_attached, assert_clean, leftovers, rules
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod

PODS = 16
NODES = 3
"""Fresh nodes the first ADDs race on: calls let go together still overlap only mostly."""
ROUNDS = 6
BANDWIDTH = "ingress=10M,egress=10M"
ATTACHMENT_KINDS = (
    "links",
    "rules",
    "qdiscs",
    "reservations",
    "records",
    "attachment locks",
    "claims",
)
"""What a pod of the FULL network with a host port and shaping has on the node."""


def _call(lab: Lab, conflist: Path, pod: Pod, command: str, port: int) -> calls.Answer:
    config = lab.invocation(pod, ports=(f"{port}:80",), bandwidth=BANDWIDTH).capability_args()
    return calls.call(lab, calls.request(conflist, config), calls.environment(command, pod))


def _all_at_once(lab: Lab, conflist: Path, work: list[tuple[Pod, str, int]]) -> list[calls.Answer]:
    """Each call in a child of this process, all let go at one instant.

    The children are forked with netc's modules imported, as the warm
    server's are, so every call starts the moment the gate opens and their
    first steps overlap -- which plugins each starting an interpreter seldom
    do on two CPUs.  Each child enters the node's namespace and runs
    netc-cni's `main` with the call's environment and stdin, as a warm
    server's child does.
    """
    gate, opener = os.pipe()
    children = []
    for index, (pod, command, port) in enumerate(work):
        config = lab.invocation(pod, ports=(f"{port}:80",), bandwidth=BANDWIDTH).capability_args()
        streams = [lab.tmp / f"call-{index}-{name}" for name in ("in", "out", "err")]
        request = calls.request(conflist, config)
        if command == "GC":  # of every attachment: none is valid
            request["cni.dev/valid-attachments"] = []
        streams[0].write_text(json.dumps(request))
        environment = {**calls.BASE_ENVIRONMENT, **calls.environment(command, pod)}
        child = os.fork()
        if child == 0:  # pragma: no cover - ends with os._exit
            os.close(opener)
            _run_plugin(lab.node, streams, environment, gate)
        children.append((child, streams))
    os.close(gate)
    os.close(opener)  # the gate opens: every child's read returns
    answers = []
    for child, streams in children:
        _, status = os.waitpid(child, 0)
        answers.append(
            calls.Answer(
                os.waitstatus_to_exitcode(status), streams[1].read_bytes(), streams[2].read_bytes()
            )
        )
    return answers


def _run_plugin(node: str, streams: list[Path], environment: dict[str, str], gate: int) -> NoReturn:
    status = 70
    try:
        netns.enter(os.open(f"/run/netns/{node}", os.O_RDONLY))
        written = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        for fd, (path, flags) in enumerate(
            zip(streams, (os.O_RDONLY, written, written), strict=True)
        ):
            os.dup2(os.open(path, flags, 0o600), fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child's, until os._exit
        sys.stdout, sys.stderr = (open(fd, "w", closefd=False) for fd in (1, 2))  # noqa: SIM115
        os.environ.clear()
        os.environ.update(environment)
        os.read(gate, 1)  # until the parent opens the gate
        status = plugin.main()
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _appended(lines: list[str]) -> list[str]:
    """The rules of `tests.faults.state.rules`, each as `<program> <table> -A ...`."""
    table, found = "", []
    for line in lines:
        program, _, text = line.partition(" ")
        if text.startswith("*"):
            table = text[1:]
        elif text.startswith("-A "):
            found.append(f"{program} {table} {text}")
    return found


def _result(answer: calls.Answer) -> dict[str, Any]:
    assert answer.status == 0, answer.stderr.decode()
    (document,) = answer.documents()
    return document


def test_pods_added_at_once_to_a_fresh_node_get_distinct_addresses_and_one_node_setup(
    tmp_path, bin_dir
):
    for node in range(NODES):
        directory = tmp_path / f"node{node}"
        directory.mkdir()
        with Lab(directory, bin_dir) as lab:
            _added_and_deleted_at_once(lab)


def _added_and_deleted_at_once(lab: Lab) -> None:
    conflist = lab.network(networks.FULL)
    pods = [lab.pod(f"c{i}") for i in range(PODS)]
    answers = _all_at_once(lab, conflist, [(pod, "ADD", 30000 + i) for i, pod in enumerate(pods)])
    results = [_result(answer) for answer in answers]
    addresses = [result["ips"][0]["address"] for result in results]
    assert len(set(addresses)) == PODS, addresses
    every = _appended(rules(lab))
    twice = [line for line, count in Counter(every).items() if count > 1]
    assert twice == [], "set up more than once"
    dispatch = [line for line in every if line.startswith("iptables nat -A NETC-HP-")]
    for pod in pods:
        chain = AttachmentNames("labnet", pod.container_id, "eth0").dnat_chain
        assert sum(line.endswith(f"-j {chain}") for line in dispatch) == 1, chain
    bridges = [link for link in lab.snapshot()["links"] if link[5] == "bridge"]
    assert [link[0] for link in bridges] == ["nc-br0"]
    for pod, result in zip(pods, results, strict=True):
        assert_attached(lab, pod, result, egress=True)
    gone = _all_at_once(lab, conflist, [(pod, "DEL", 30000 + i) for i, pod in enumerate(pods)])
    assert [answer.status for answer in gone] == [0] * PODS
    assert_clean(lab, pods)


@pytest.mark.parametrize("other", ["DEL", "GC"])
def test_an_add_and_a_del_of_one_attachment_at_once_leave_it_whole_or_gone(lab, other):
    """A GC that lists the attachment while its ADD runs waits for it, then detaches it."""
    conflist = lab.network(networks.FULL)
    for round_ in range(ROUNDS):
        pod = lab.pod(f"r{round_}")
        added, removed = _all_at_once(lab, conflist, [(pod, "ADD", 30000), (pod, other, 30000)])
        result = _result(added)
        assert removed.status == 0, removed.stderr.decode()
        found = leftovers(lab, [pod])
        present = [kind for kind in ATTACHMENT_KINDS if found[kind]]
        if found["records"]:  # the ADD ran last: all of the pod, working
            assert present == list(ATTACHMENT_KINDS), found
            assert_attached(lab, pod, result, egress=True)
            assert _call(lab, conflist, pod, "DEL", 30000).status == 0
        else:  # the DEL ran last: nothing of it
            assert present == [], found
        assert_clean(lab, [pod])
