"""SIGKILL at each distinct step of a cold ADD and DEL, then the runtime's recovery.

The steps are the plugin's own system calls that change something: renames,
links and unlinks of state files, fsyncs, flocks, writes, netlink sendtos,
and the start (clone3, posix_spawn's) and end (wait4) of each program it
runs.  A normal call is traced first to count them; then, for each sampled N, the same call runs
under `strace -e inject=SYSCALL:signal=KILL:when=N`, killed as it enters its
Nth such call.  After each kill a runtime would repeat the call: the repeated
ADD must succeed with one address per family and a working pod (the gateway
answers, egress goes through its ifb), two DELs must succeed, and nothing of
the pod may remain (tests/faults/state.py lists what is looked at).

Every ADD point starts from a new node, so the node's own setup (bridge, NAT
chains, sysctls, markers) is killed too.  Lean by default (the first and the
last of each call, a few netlink sends); NETC_FAULTS_LONG=1 kills at all.
"""

from __future__ import annotations

import compileall
import re
import signal
from pathlib import Path

import pytest

from tests.faults import calls
from tests.faults.state import assert_attached, assert_clean
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod
from tests.support import ROOT

PORTS = ("8080:80", "8081:81/udp")
BANDWIDTH = "ingress=10M,egress=10M"
ADD_STEPS = (
    "rename",
    "link",
    "unlink",
    "fsync",
    "flock",
    "write",
    "mkdir",
    "sendto",
    "clone3",
    "wait4",
)
DEL_STEPS = ("unlink", "flock", "write", "sendto", "clone3", "wait4")
LEAN = {"sendto": 4}
"""How many points of a step the lean mode kills at (2 otherwise: the first and the last)."""
RESTARTED = re.compile(r"= \? ERESTART")
"""strace's ending of a call the kernel enters again (ERESTARTNOINTR, ERESTARTSYS, ...)."""
COUNTS = 2
"""Normal calls counted; the fewest calls any made is what the kills aim at (a call that
happens to make one more, a log line, must not leave the last point unkilled)."""


@pytest.fixture(autouse=True, scope="module")
def _byte_code_written() -> None:
    """netc's byte code, compiled before any count: a call that writes a stale or missing
    .pyc makes hundreds of writes more than the same call after it."""
    for package in ("compiler", "runtime"):
        compileall.compile_dir(ROOT / package, quiet=1)


def _call(lab: Lab, conflist: Path, pod: Pod, command: str, strace: tuple[str, ...] = ()):
    config = lab.invocation(pod, ports=PORTS, bandwidth=BANDWIDTH).capability_args()
    return calls.call(
        lab,
        calls.request(conflist, config),
        calls.environment(command, pod),
        wrapper=("strace", "-qq", *strace) if strace else (),
    )


def _traced(
    lab: Lab, conflist: Path, pod: Pod, command: str, step: str, *, inject: tuple[str, ...] = ()
) -> tuple[int, list[str]]:
    """A call's exit status and the calls to `step` it made, as strace shows them (numbers
    and names that differ from call to call masked).

    An attempt the kernel restarted is not a call of its own: a sysctl's write that finds
    rtnl held by another namespace's work returns ERESTARTNOINTR and is entered again, so
    a call counted while other tests hold rtnl would make more attempts than the kill run.
    """
    log = lab.tmp / f"{command}-{pod.name}.strace"
    answer = _call(
        lab,
        conflist,
        pod,
        command,
        ("-o", str(log), "-s", "48", "-y", "-e", f"trace={step}", *inject),
    )
    made = [
        re.sub(r"[0-9a-f]{6,}|\d+", "#", line)
        for line in log.read_text().splitlines()
        if line.startswith(f"{step}(") and not RESTARTED.search(line)
    ]
    return answer.status, made


def _count(lab: Lab, conflist: Path, pod: Pod, command: str, step: str) -> list[str]:
    """The calls to `step` a normal call makes."""
    status, made = _traced(lab, conflist, pod, command, step)
    assert status == 0, f"{command} failed under strace"
    assert made, f"{command} no longer calls {step}: update the kill-point list"
    return made


def _count_add(directory: Path, bin_dir: Path, step: str) -> list[str]:
    with Lab(directory, bin_dir) as lab:
        return _count(lab, lab.network(networks.FULL), lab.pod("p"), "ADD", step)


def _count_del(lab: Lab, conflist: Path, pod: Pod, step: str) -> list[str]:
    lab.add(conflist, pod, ports=PORTS, bandwidth=BANDWIDTH)
    return _count(lab, conflist, pod, "DEL", step)


def _killed_at(
    lab: Lab, conflist: Path, pod: Pod, command: str, *, step: str, n: int, counted: list[str]
) -> None:
    status, made = _traced(
        lab, conflist, pod, command, step, inject=("-e", f"inject={step}:signal=KILL:when={n}")
    )
    if status != -signal.SIGKILL:
        differ = "\n".join(
            [
                *(f"- {c}" for c in counted if c not in made),
                *(f"+ {c}" for c in made if c not in counted),
            ]
        )
        raise AssertionError(
            f"{command} was not killed at {step} #{n}: it made {len(made)} "
            f"calls, not {len(counted)}:\n{differ}"
        )


def _recovers(lab: Lab, conflist: Path, pod: Pod, where: str) -> None:
    result = lab.add(conflist, pod, ports=PORTS, bandwidth=BANDWIDTH)
    assert_attached(lab, pod, result, egress=True)
    lab.delete(conflist, pod)
    lab.delete(conflist, pod)
    try:
        assert_clean(lab, [pod])
    except AssertionError as failure:
        raise AssertionError(f"after a kill at {where}: {failure}") from None


def _points(count: int, step: str) -> list[int]:
    return calls.sample(range(1, count + 1), LEAN.get(step, 2))


@pytest.mark.parametrize("step", ADD_STEPS)
def test_an_add_killed_at_any_step_is_repaired_by_the_next(tmp_path, bin_dir, step):
    counted = min(
        (_count_add(_directory(tmp_path, f"count{k}"), bin_dir, step) for k in range(COUNTS)),
        key=len,
    )
    for n in _points(len(counted), step):
        with Lab(_directory(tmp_path, f"{step}{n}"), bin_dir) as lab:
            conflist = lab.network(networks.FULL)
            pod = lab.pod("p")
            _killed_at(lab, conflist, pod, "ADD", step=step, n=n, counted=counted)
            _recovers(lab, conflist, pod, f"ADD {step} #{n} of {len(counted)}")


@pytest.mark.parametrize("step", DEL_STEPS)
def test_a_del_killed_at_any_step_is_finished_by_the_next(lab, step):
    conflist = lab.network(networks.FULL)
    counted = min(
        (_count_del(lab, conflist, lab.pod(f"count{k}"), step) for k in range(COUNTS)), key=len
    )
    for n in _points(len(counted), step):
        pod = lab.pod(f"{step}{n}")
        lab.add(conflist, pod, ports=PORTS, bandwidth=BANDWIDTH)
        _killed_at(lab, conflist, pod, "DEL", step=step, n=n, counted=counted)
        _recovers(lab, conflist, pod, f"DEL {step} #{n} of {len(counted)}")


def _directory(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    return directory
