"""The warm server under abuse: silent, garbage, half-written and killed callers, crowds, huge
and non-UTF-8 environments.  After each: the server is up, serves the next call itself, and
has no process left (its children are read from /proc by PID); the pods' state is clean after
DEL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from compiler.datatypes import replace
from runtime import driver
from runtime.cni import server as protocol
from runtime.install import identity, install
from tests.faults import calls
from tests.faults.state import assert_attached, assert_clean
from tests.kernel import networks
from tests.support import ROOT, python_of

IDENTITY = os.fsencode(identity())


def _server_fds(warm) -> int:
    """The descriptors the server holds between calls: the fewest of readings over 100 ms
    (while it forks a spare it holds that spare's pipe twice, for a moment), once its spare
    waits (a server just started holds no spare's pipe yet)."""
    warm.wait_spare()
    readings = []
    for _ in range(10):
        readings.append(len(os.listdir(f"/proc/{warm.pid}/fd")))
        time.sleep(0.01)
    return min(readings)


def _settles_at(lab, warm, fds: int) -> bool:
    """Whether the server gets back to holding `fds` descriptors within 5 s."""
    return lab.wait_for(lambda: _server_fds(warm) == fds, 5)


def _clean_once_served(lab, warm, pods) -> None:
    """Nothing of `pods` is left once the server's children have ended: a DEL's devices go
    after its answer, in the call's process (runtime/cni/server.py)."""
    assert warm.wait_idle(15), f"server children left: {warm.children()}"
    assert_clean(lab, pods)


def _served_next(lab, warm) -> None:
    """The server is up, idle, holds no extra descriptor, and runs the next call itself."""
    assert warm.wait_idle(15), f"server children left: {warm.children()}"
    assert warm.alive(), warm.log()
    before = warm.calls_served()
    conflist = lab.network(networks.FULL)
    pod = lab.pod(f"next{before}")
    result = lab.add(conflist, pod)
    assert_attached(lab, pod, result)
    lab.delete(conflist, pod)
    assert warm.calls_served() == before + 2, "the call went cold: " + warm.log()[-2000:]
    _clean_once_served(lab, warm, [pod])


# --- raw clients -----------------------------------------------------------------------------


@contextlib.contextmanager
def _client(warm) -> Iterator[socket.socket]:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(10)
    connection.connect(str(warm.socket))
    try:
        yield connection
    finally:
        connection.close()


def _descriptors(lab, count: int = protocol.FDS, namespaces: bool = True) -> list[int]:
    """Streams on /dev/null, then the lab node's network and the test's mount namespace.

    Never the test's own network namespace: that is the machine's.
    """
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(protocol.STREAMS)]
    if namespaces:
        fds += [
            os.open(f"/run/netns/{lab.node}", os.O_RDONLY),
            os.open("/proc/self/ns/mnt", os.O_RDONLY),
        ]
    while len(fds) < count:
        fds.append(os.open(os.devnull, os.O_RDONLY))
    return fds[:count]


def _frame(payload: bytes, version: int = protocol.PROTOCOL, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    return protocol.MAGIC + protocol.HEADER.pack(version, size) + payload


def _send(connection: socket.socket, data: bytes, fds: list[int]) -> None:
    """Send all of `data`, unless the server refuses it and hangs up first (its answer,
    already sent, is still there to read)."""
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
    try:
        sent = connection.sendmsg([data], ancillary if fds else [])
        connection.sendall(data[sent:])
    except BrokenPipeError:
        pass
    finally:
        for fd in fds:
            os.close(fd)


def _reply(connection: socket.socket) -> bytes:
    try:
        return connection.recv(1)
    except ConnectionResetError:
        return b""


VALID = IDENTITY + b"\0CNI_COMMAND=VERSION"

Case = Callable[[object, socket.socket], bytes]
"""Talks to the server as a broken client would; returns the reply the server gave."""


def _random_bytes(lab, connection):
    _send(connection, random.Random(9).randbytes(4096), [])
    return _reply(connection)


def _unframed_old_launcher(lab, connection):
    _send(connection, IDENTITY + b"\0\0CNI_COMMAND=VERSION", _descriptors(lab))
    return _reply(connection)


def _another_protocol(lab, connection):
    _send(connection, _frame(VALID, version=protocol.PROTOCOL + 1), [])
    return _reply(connection)


def _over_the_limit(lab, connection):
    _send(connection, _frame(b"", length=protocol.MAX_PAYLOAD + 1), [])
    return _reply(connection)


def _half_a_header(lab, connection):
    _send(connection, protocol.MAGIC[:5], [])
    connection.shutdown(socket.SHUT_WR)
    return _reply(connection)


def _half_a_payload_then_gone(lab, connection):
    _send(connection, _frame(b"x" * 500, length=1000), [])
    connection.shutdown(socket.SHUT_WR)
    return _reply(connection)


def _half_a_payload_then_silent(lab, connection):
    _send(connection, _frame(b"x" * 500, length=1000), [])
    return _reply(connection)  # the server gives up after its hand-over timeout


def _not_utf8_identity(lab, connection):
    _send(connection, _frame(b"netc \xff\xfe\0CNI_COMMAND=\xff"), [])
    return _reply(connection)


def _descriptors_before_go(lab, connection):
    _send(connection, _frame(VALID), _descriptors(lab))
    return _reply(connection)


def _ready(connection) -> None:
    _send(connection, _frame(VALID), [])
    assert _reply(connection) == bytes([protocol.READY])


def _go_with(fds):
    def case(lab, connection):
        _ready(connection)
        _send(connection, bytes([protocol.GO]), fds(lab))
        return _reply(connection)

    return case


def _swapped(lab):
    *streams, net, mount = _descriptors(lab)
    return [*streams, mount, net]


def _ready_then_silent(lab, connection):
    _ready(connection)
    return _reply(connection)  # no GO: the child gives up and runs nothing


def _ready_then_gone(lab, connection):
    _ready(connection)
    connection.shutdown(socket.SHUT_WR)
    return _reply(connection)


def _ready_then_garbage(lab, connection):
    _ready(connection)
    _send(connection, b"\x7f" * 64, _descriptors(lab))
    return _reply(connection)


NOT_ME = bytes([protocol.NOT_ME])
BROKEN_CLIENTS: list[tuple[str, Case]] = [
    ("random bytes", _random_bytes),
    ("unframed old launcher", _unframed_old_launcher),
    ("another protocol", _another_protocol),
    ("over the limit", _over_the_limit),
    ("half a header", _half_a_header),
    ("half a payload then gone", _half_a_payload_then_gone),
    ("half a payload then silent", _half_a_payload_then_silent),
    ("not UTF-8 identity", _not_utf8_identity),
    ("descriptors before GO", _descriptors_before_go),
    ("GO without descriptors", _go_with(lambda lab: [])),
    ("GO with too few descriptors", _go_with(lambda lab: _descriptors(lab, 2))),
    ("GO with too many descriptors", _go_with(lambda lab: _descriptors(lab, 9))),
    ("GO with files for namespaces", _go_with(lambda lab: _descriptors(lab, namespaces=False))),
    ("GO with the namespaces swapped", _go_with(_swapped)),
    # after READY the launcher has committed nothing; without GO the call never runs
    ("READY then silent", _ready_then_silent),
    ("READY then gone", _ready_then_gone),
    ("READY then garbage", _ready_then_garbage),
]


def test_the_callers_output_ends_when_the_status_is_sent_not_when_the_child_has_exited(lab, warm):
    """A runtime reads stdout to its end: the serving child lets go of it before the status,
    so the end does not wait for the kernel to free the child's memory."""
    warm.wait_spare()
    out_read, out_write = os.pipe()
    with _client(warm) as connection:
        _send(connection, _frame(VALID), [])
        assert _reply(connection) == bytes([protocol.READY])
        streams = [os.open(os.devnull, os.O_RDONLY), out_write, os.dup(out_write)]
        _send(connection, bytes([protocol.GO]), streams + _descriptors(lab)[protocol.STREAMS :])
        assert _reply(connection) == bytes([protocol.STARTED])
        assert _reply(connection) == b"\0"
        os.set_blocking(out_read, False)
        answer = os.read(out_read, 1 << 16)  # written before the status: there now
        assert b"supportedVersions" in answer
        assert os.read(out_read, 1 << 16) == b"", "the child still held the caller's stdout"
    os.close(out_read)
    _served_next(lab, warm)


@pytest.mark.parametrize(
    "client", [case for _, case in BROKEN_CLIENTS], ids=[name for name, _ in BROKEN_CLIENTS]
)
def test_a_broken_hand_over_is_refused_and_the_server_carries_on(lab, warm, client):
    fds = _server_fds(warm)
    with _client(warm) as connection:
        assert client(lab, connection) == NOT_ME
    _served_next(lab, warm)
    assert warm.calls_served() == 2, "a broken hand-over must not run a call"
    assert _settles_at(lab, warm, fds), "the server keeps a descriptor per connection"


def test_silent_clients_delay_no_call_and_go_away(lab, warm):
    """Connections that never speak: calls are served meanwhile; the children time out.

    Each takes a spare (~3 ms to fork and to accept, unloaded): lean mode opens
    50, NETC_FAULTS_LONG=1 200, within the launcher's 2 s on a loaded machine.
    """
    fds = _server_fds(warm)
    with contextlib.ExitStack() as stack:
        silent = [stack.enter_context(_client(warm)) for _ in range(200 if calls.LONG else 50)]
        conflist = lab.network(networks.FULL)
        pod = lab.pod("p")
        result = lab.add(conflist, pod, ports=("8080:80",))
        assert_attached(lab, pod, result)
        assert warm.calls_served() == 1
        lab.delete(conflist, pod)
        _clean_once_served(lab, warm, [pod])
        # each silent connection is dropped by its own child after the hand-over timeout
        assert all(_reply(connection) == NOT_ME for connection in silent)
    _served_next(lab, warm)
    assert _settles_at(lab, warm, fds)


def test_concurrent_launchers_are_each_served(lab, warm):
    count = 200 if calls.LONG else 24
    conflist = lab.network(networks.bridge_network(extra="    hostport\n"))
    pods = [lab.pod(f"c{n}") for n in range(count)]
    with ThreadPoolExecutor(count) as pool:
        results = list(
            pool.map(lambda n: lab.add(conflist, pods[n], ports=(f"{31000 + n}:80",)), range(count))
        )
    addresses = [result["ips"][0]["address"] for result in results]
    assert len(set(addresses)) == count
    for pod, result in zip(pods[:3], results[:3], strict=True):
        assert_attached(lab, pod, result)
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda pod: lab.delete(conflist, pod), pods))
    _clean_once_served(lab, warm, pods)
    assert warm.wait_idle() and warm.alive()
    # a launcher that waits too long for its hand-over runs the call itself: count, not all
    print(f"{warm.calls_served()} of {2 * count} calls served warm")


def _running(pid: int) -> bool:
    """Whether a process exists and has not ended (a zombie waiting for its reaper has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_spare_waits_for_the_next_call_and_ends_with_its_server(lab, warm):
    """The child forked ahead of a call is killed with the server, never left accepting."""
    spare = warm.wait_spare()
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    lab.add(conflist, pod)
    assert warm.calls_served() == 1
    # the call returns once the launcher has its status; the child may still be exiting
    assert lab.wait_for(lambda: spare not in warm.children(), 10), (
        "the spare took the call and ended with it"
    )
    spare = warm.wait_spare()
    warm.stop()
    assert lab.wait_for(lambda: not _running(spare), 10), "a spare outlived its server"
    result = lab.add(conflist, pod)  # no server: the launcher runs the call itself
    assert_attached(lab, pod, result)
    lab.delete(conflist, pod)
    _clean_once_served(lab, warm, [pod])


def test_the_next_spare_is_forked_when_the_call_ends_not_during_it(lab, warm):
    """While one call runs and no one else waits, the server forks nothing to compete with it."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    lock = lab.tmp / "state" / "labnet" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    warm.wait_spare()
    with open(lock, "a") as held, ThreadPoolExecutor(1) as pool:
        fcntl.flock(held, fcntl.LOCK_EX)  # the call waits for the network's lock meanwhile
        adding = pool.submit(lab.add, conflist, pod)
        assert lab.wait_for(lambda: len(warm.busy()) == 1, 10), warm.log()
        released = time.clock_gettime(time.CLOCK_BOOTTIME)
        fcntl.flock(held, fcntl.LOCK_UN)
        assert_attached(lab, pod, adding.result(timeout=30))
    # the spare waiting now is the first forked since the call took the last one: it was
    # forked after the call could go on, not while the call was held
    assert _started(warm.wait_spare()) >= released - 1 / os.sysconf("SC_CLK_TCK")
    lab.delete(conflist, pod)
    _clean_once_served(lab, warm, [pod])


def test_a_call_s_process_serves_the_callers_waiting_when_it_ends(lab, warm):
    """Callers waiting when a call ends are served by that call's process, one after the
    other, each in its own namespaces with its own environment; then the process ends.

    The server is stopped meanwhile (SIGSTOP): it forks no spare for them.
    """
    conflist = lab.network(networks.FULL)
    pods = [lab.pod(name) for name in ("first", "second", "third")]
    lock = lab.tmp / "state" / "labnet" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    spare = warm.wait_spare()
    with open(lock, "a") as held, ThreadPoolExecutor(len(pods)) as pool:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first call waits for the network's lock
        adding = [pool.submit(lab.add, conflist, pods[0])]
        assert lab.wait_for(lambda: warm.busy() == [spare], 10), warm.log()
        os.kill(warm.pid, signal.SIGSTOP)
        try:
            adding += [pool.submit(lab.add, conflist, pod) for pod in pods[1:]]
            assert lab.wait_for(lambda: _queued(lab, warm) == 2, 5), "the callers did not queue"
            fcntl.flock(held, fcntl.LOCK_UN)
            results = [future.result(timeout=30) for future in adding]
        finally:
            os.kill(warm.pid, signal.SIGCONT)
    assert re.findall(r"call handed to process (\d+)", warm.log()) == [str(spare)] * 3
    for pod, result in zip(pods, results, strict=True):
        assert_attached(lab, pod, result)
    assert lab.wait_for(lambda: not _running(spare), 10), "no caller waits: the process ends"
    assert warm.wait_spare() != spare
    for pod in pods:
        lab.delete(conflist, pod)
    _clean_once_served(lab, warm, pods)


def _queued(lab, warm) -> int:
    """Connections waiting in the server's socket for a process to accept them."""
    listening = lab.run(lab.node, "ss", "-xlH", "src", str(warm.socket)).stdout.split()
    return int(listening[2]) if len(listening) > 2 else -1


def _started(pid: int) -> float:
    """When a process started, in seconds of CLOCK_BOOTTIME (/proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _dirty_kib(pid: int) -> dict[str, int]:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in rollup if line.endswith(" kB"))
    return {key: int(fields[key].split()[0]) for key in ("Private_Dirty", "Shared_Dirty")}


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    return (int(release[0]), int(release[1])) >= (major, minor)


@pytest.mark.skipif(not _kernel_at_least(5, 14), reason="MADV_POPULATE_WRITE came in Linux 5.14")
def test_a_waiting_spare_owns_the_pages_calls_write_and_no_others(lab, warm):
    """Copy-on-write copies of the pages calls write are made while the spare waits, not by the
    call (own_pages); the pages calls never write stay shared with the server."""
    before = _dirty_kib(warm.wait_spare())  # forked before any call: it knows of no page
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    lab.add(conflist, pod)
    lab.delete(conflist, pod)  # the spare forked after the DEL knows what the ADD wrote
    after = _dirty_kib(warm.wait_spare())
    owned = after["Private_Dirty"] - before["Private_Dirty"]
    assert owned > 1024, (before, after)
    assert after["Shared_Dirty"] > before["Shared_Dirty"] / 2, (before, after)
    _clean_once_served(lab, warm, [pod])


def _large_environment(total: int) -> dict[str, str]:
    """Variables adding up to `total` bytes (each under the kernel's 128 kB per string)."""
    size = 100_000
    return {
        f"NETC_FILLER_{n}": "f" * min(size, total - n * size)
        for n in range((total + size - 1) // size)
    }


@pytest.mark.parametrize("total", [60_000, 1 << 20], ids=["60kB", "1MiB"])
def test_a_huge_environment_ahead_of_the_cni_variables_is_handed_over_whole(lab, warm, total):
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    # the driver puts extra variables before the CNI_* ones, as a runtime's own environment is
    invocation = replace(
        lab.invocation(pod, ports=("8080:80",), bandwidth="egress=10M"),
        extra_env=_large_environment(total),
    )
    result = driver.add(driver.Conflist(conflist.read_bytes()), invocation)
    assert_attached(lab, pod, result, egress=True)
    driver.delete(driver.Conflist(conflist.read_bytes()), invocation)
    assert warm.calls_served() == 2, "the call went cold: " + warm.log()[-2000:]
    _clean_once_served(lab, warm, [pod])
    _served_next(lab, warm)


NOT_UTF8 = [
    {"CNI_ARGS": b"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=\xff"},
    {b"NETC_\xff": b"\xfe\xfd", "LANG": b"\xc3("},
    {"CNI_IFNAME": b"eth\xff"},
    {"CNI_CONTAINERID": b"id-\xff"},
]


@pytest.mark.parametrize("variables", NOT_UTF8, ids=["cni-args", "other", "ifname", "id"])
def test_non_utf8_bytes_in_the_environment_get_the_cold_answer(lab, warm, bin_dir, variables):
    conflist = lab.network(networks.FULL)
    answers = []
    for directory in (lab.bin_dir, bin_dir):  # warm, then the cold launcher
        lab.bin_dir = directory
        pod = lab.pod(f"u{len(answers)}")
        answer = calls.call(lab, calls.request(conflist), calls.environment("ADD", pod, variables))
        answers.append((answer.status, [(d.get("code"), sorted(d)) for d in answer.documents()]))
        calls.call(lab, calls.request(conflist), calls.environment("DEL", pod, variables))
        calls.call(lab, calls.request(conflist), calls.environment("DEL", pod))
    assert answers[0] == answers[1]
    if "CNI_ARGS" in variables:
        assert answers[0][0] == 0, "a pod name is not an identifier: any bytes will do"
    assert warm.calls_served() >= 1, "the call went cold: " + warm.log()[-2000:]
    lab.bin_dir = lab.tmp / "warm-bin"
    _served_next(lab, warm)


def _fractions() -> list[float]:
    """How far into an ADD its caller is killed, as a fraction of the ADD's own duration."""
    return calls.sample([n / 20 for n in range(20)], 6)


PORTS = tuple(f"{30000 + n}:{80 + n}" for n in range(100))


def _busy_add(lab, conflist, pod) -> subprocess.Popen:
    """An ADD with many port mappings and shaping through the launcher, in the background."""
    invocation = lab.invocation(pod, ports=PORTS, bandwidth="egress=10M")
    config = invocation.capability_args()
    return calls.start(lab, calls.request(conflist, config), calls.environment("ADD", pod))


def _duration(lab, warm, conflist) -> float:
    """Seconds the same ADD takes here, measured on a pod of its own (then deleted)."""
    pod = lab.pod("timing")
    started = time.monotonic()
    launcher = _busy_add(lab, conflist, pod)
    launcher.communicate(timeout=90)
    elapsed = time.monotonic() - started
    assert launcher.returncode == 0
    lab.delete(conflist, pod)
    assert warm.wait_idle()
    return elapsed


def _recovers(lab, warm, conflist, pod) -> None:
    """The repeated ADD (the same call again) works, two DELs succeed, nothing remains."""
    result = lab.add(conflist, pod, ports=PORTS, bandwidth="egress=10M")
    assert_attached(lab, pod, result, egress=True)
    lab.delete(conflist, pod)
    lab.delete(conflist, pod)
    _clean_once_served(lab, warm, [pod])


def _add_under_way(lab, warm, fraction: float):
    """The network, the pod and its ADD's launcher, `fraction` of the ADD's duration in."""
    conflist = lab.network(networks.FULL)
    moment = fraction * _duration(lab, warm, conflist)
    pod = lab.pod("p")
    launcher = _busy_add(lab, conflist, pod)
    time.sleep(moment)
    return conflist, pod, launcher


@pytest.mark.parametrize("fraction", _fractions())
def test_a_launcher_killed_during_its_add_leaves_no_rogue_process(lab, warm, fraction):
    conflist, pod, launcher = _add_under_way(lab, warm, fraction)
    launcher.kill()
    # a runtime reads the call's stdout to its end: it ends when the call's process does
    launcher.communicate(timeout=90)
    assert warm.wait_idle(90), f"server children left: {warm.children()}"
    assert warm.alive()
    _recovers(lab, warm, conflist, pod)
    _served_next(lab, warm)


@pytest.mark.parametrize("fraction", _fractions())
def test_a_call_process_killed_during_its_add_fails_the_call_cleanly(lab, warm, fraction):
    conflist, pod, launcher = _add_under_way(lab, warm, fraction)
    for child in warm.children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=30)
    answer = calls.Answer(launcher.returncode, stdout, stderr)
    if answer.status != 0:  # killed before it answered (a call not yet handed over runs cold)
        assert answer.error()["code"] == 11
    assert warm.wait_idle() and warm.alive()
    _recovers(lab, warm, conflist, pod)
    _served_next(lab, warm)


def test_the_launcher_hands_calls_over_under_python_3_9(lab, warm):
    python = python_of((3, 9))
    if python is None:
        pytest.skip("no Python 3.9 on this machine")
    install(lab.bin_dir, python=python, warm_socket=str(warm.socket))
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    result = lab.add(
        conflist, pod, ports=("8080:80",), args="K8S_POD_NAMESPACE=ns;K8S_POD_NAME=\udcff"
    )
    assert_attached(lab, pod, result)
    lab.delete(conflist, pod)
    assert warm.calls_served() == 2, "the call went cold: " + warm.log()[-2000:]
    _clean_once_served(lab, warm, [pod])


def test_a_server_that_never_answers_costs_a_call_seconds_not_its_success(lab, warm):
    """Stopped (SIGSTOP, with its spare), the server still has connections queued for it but
    answers none: the launcher runs the call itself after its hand-over wait; resumed, the
    server drops the stale connection and serves again."""
    conflist = lab.network(networks.FULL)
    pod = lab.pod("p")
    stopped = [warm.pid, warm.wait_spare()]  # the spare forked: none can come after the stop
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        result = lab.add(conflist, pod, ports=("8080:80",))
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert_attached(lab, pod, result)
    assert warm.calls_served() == 0
    lab.delete(conflist, pod)
    _clean_once_served(lab, warm, [pod])
    _served_next(lab, warm)


ODD_STDIN = {
    "bom": lambda good: b"\xef\xbb\xbf" + good,
    "bom-only": lambda _: b"\xef\xbb\xbf",
    "nul-first": lambda good: b"\x00" + good,
    "nul-last": lambda good: good + b"\x00",
}
"""Stdin of a good request made odd: Python's JSON decoder would take a BOM or a leading NUL
for a hint of another encoding, whose codec the warm child cannot import."""


@pytest.mark.parametrize("case", ODD_STDIN)
def test_odd_bytes_on_stdin_get_the_same_answer_warm_and_cold(lab, warm, bin_dir, case):
    """A byte order mark or NUL bytes in stdin: code 6, from the warm path as from the cold."""
    conflist = lab.network(networks.FULL)
    stdin = ODD_STDIN[case](json.dumps(calls.request(conflist)).encode())
    answers = []
    for directory in (lab.bin_dir, bin_dir):  # warm, then the cold launcher
        lab.bin_dir = directory
        pod = lab.pod(f"o{len(answers)}")
        answer = calls.call(lab, stdin, calls.environment("ADD", pod))
        answers.append((answer.status, answer.error()["code"]))
    assert answers == [(1, 6), (1, 6)]
    assert warm.calls_served() >= 1, "the call went cold: " + warm.log()[-2000:]


AGENT = """
import os, subprocess, sys, time
reports, writer = os.pipe()
command = [sys.executable, "-m", "runtime.cli", "serve-cni", "--socket", sys.argv[1]]
server = subprocess.Popen(
    [*command, "--report-fd", str(writer)],
    pass_fds=(writer,), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
print(server.pid, flush=True)
time.sleep(600)
"""
"""An agent's part in starting its server: a report pipe it reads from (here: holds)."""
SERVE = [sys.executable, "-m", "runtime.cli", "serve-cni"]


def test_an_agent_s_server_ends_when_the_agent_is_killed(tmp_path, lab):
    """A server started with --report-fd ends with the process that started it: an agent
    killed outside a container leaves no server serving calls beside its successor's."""
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(socket_path)], stdout=subprocess.PIPE, cwd=ROOT
    )
    server = int(agent.stdout.readline())
    try:
        assert lab.wait_for(socket_path.exists, 30), "the server never listened"
        agent.kill()
        agent.wait()
        assert lab.wait_for(lambda: not _running(server), 10), "the server outlived its agent"
    finally:
        agent.kill()
        agent.wait()
        if _running(server):
            os.kill(server, signal.SIGKILL)


def test_a_server_whose_agent_is_gone_already_does_not_start(tmp_path):
    """Its report pipe has no reader left: the agent ended before the server got going."""
    reports, writer = os.pipe()
    os.close(reports)
    try:
        done = subprocess.run(
            [*SERVE, "--socket", str(tmp_path / "s"), "--report-fd", str(writer)],
            pass_fds=(writer,),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.returncode == 1
    assert "the agent that started it has ended" in done.stderr
    assert not (tmp_path / "s").exists(), "it never listened"
