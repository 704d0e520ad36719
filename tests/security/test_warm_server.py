"""The warm server lends nothing; the launcher trusts no other server.

`netc serve-cni` runs with every capability; a launcher hands it a call with
its environment and its network and mount namespaces.  A caller that is
root but holds no capability -- or one that set up a mount namespace of its
own -- must not get programs of its choosing run with the server's
capabilities.  Each attack here binds a fake `iptables-restore` over the
real one in a private mount namespace and makes a first ADD, whose node NAT
runs iptables-restore; the fake records the capabilities it ran with.

The other way round, a launcher must not hand a call -- and the runtime's
stdout -- to a server that is not root: anyone able to put a socket at the
server's path (a directory others may write) would forge ADD results.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import programs
from runtime.cni import server
from runtime.install import install
from tests.faults import calls
from tests.kernel import networks
from tests.kernel.lab import Lab, Pod
from tests.kernel.warm import WarmServer
from tests.support import ROOT

REAL = "/usr/sbin/iptables-restore"


def _fake(lab: Lab) -> tuple[Path, Path]:
    """A fake iptables-restore writing its CapEff line to an evidence file; both paths."""
    evidence = lab.tmp / "evidence"
    fake = lab.tmp / "fake-iptables-restore"
    fake.write_text(
        f"#!/bin/sh\ngrep CapEff /proc/self/status >> {evidence}\ncat > /dev/null\nexit 0\n"
    )
    fake.chmod(0o755)
    return fake, evidence


def _add_from_a_private_mount_namespace(lab: Lab, pod: Pod, fake: Path, *caps: str) -> calls.Answer:
    """A first ADD by a launcher whose mount namespace has `fake` over iptables-restore.

    `caps` wrap the launcher (setpriv options); none: a root with every capability.
    """
    conflist = lab.network(networks.FULL)
    script = f'mount --bind "$1" {REAL} && shift && exec "$@"'
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        str(fake),
        *(["setpriv", *caps] if caps else []),
    ]
    return calls.call(lab, calls.request(conflist), calls.environment("ADD", pod), wrapper)


def _capabilities(evidence: Path) -> list[int]:
    """The effective capability sets the fake program ran with, one per run."""
    if not evidence.exists():
        return []
    return [int(line.split()[1], 16) for line in evidence.read_text().splitlines()]


def test_a_capability_less_root_gets_no_program_run_with_the_servers_capabilities(
    lab: Lab, warm: WarmServer
):
    fake, evidence = _fake(lab)
    answer = _add_from_a_private_mount_namespace(
        lab, lab.pod("p"), fake, "--bounding-set", "-all", "--inh-caps", "-all"
    )
    assert all(caps == 0 for caps in _capabilities(evidence)), _capabilities(evidence)
    assert warm.calls_served() == 0, warm.log()
    assert "lacks capabilities" in warm.log()
    assert answer.status != 0  # the launcher ran it itself, with nothing: the kernel refused


@pytest.mark.parametrize(
    "capabilities",
    [(), ("--bounding-set", "-all", "--inh-caps", "-all")],
    ids=["root", "capability-less root"],
)
def test_a_server_in_a_pid_namespace_of_its_own_checks_callers_it_cannot_see(
    lab: Lab, capabilities: tuple[str, ...]
):
    """netc's agent has no hostPID: its server's callers are in none of its PID namespaces
    (SO_PEERCRED gives PID 0), so it reads them in their own /proc through the socket's
    pidfd -- a root is served, a capability-less root still refused."""
    warm = WarmServer(lab, own_pids=True)
    fake, evidence = _fake(lab)
    answer = _add_from_a_private_mount_namespace(lab, lab.pod("p"), fake, *capabilities)
    if capabilities:
        assert warm.calls_served() == 0, warm.log()
        assert "lacks capabilities" in warm.log()
        assert all(caps == 0 for caps in _capabilities(evidence)), _capabilities(evidence)
    else:
        assert answer.status == 0, answer.stdout
        assert warm.calls_served() == 1, warm.log()
        assert _capabilities(evidence) == []  # the server's own iptables-restore ran


def test_the_server_runs_its_own_programs_whatever_the_callers_mount_namespace_holds(
    lab: Lab, warm: WarmServer
):
    fake, evidence = _fake(lab)
    answer = _add_from_a_private_mount_namespace(lab, lab.pod("p"), fake)
    assert answer.status == 0, answer.stdout
    assert warm.calls_served() == 1, warm.log()
    assert _capabilities(evidence) == []
    nat = lab.run(lab.node, "iptables-save", "-t", "nat").stdout
    assert "NETC-PO-" in nat, "the real iptables-restore set up the network's NAT"


def test_programs_get_a_fixed_environment(monkeypatch):
    """A caller's LD_PRELOAD or PATH reaches no program netc starts as root."""
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("PATH", "/tmp/evil:/usr/bin:/bin")
    listed = programs.run("env").decode().splitlines()
    assert listed == [f"PATH={':'.join(programs.SEARCH_PATH)}"]


FORGED = '{"cniVersion": "1.0.0", "ips": [{"address": "6.6.6.6/32"}], "forged": true}\n'


@pytest.fixture
def open_directory(public_dir: Path) -> Path:
    """A socket directory anyone may write in (a misconfigured /run/netc)."""
    public_dir.chmod(0o777)
    return public_dir


def _forger(socket_path: Path) -> int:
    """A process of uid 65534 posing as the warm server: it answers every call with FORGED.

    It speaks the hand-over (runtime/cni/server.py) and writes FORGED to the
    stdout it is handed, then reports status 0.  Its PID, once it listens.
    """
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - killed by the test
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(socket_path))
            listener.listen(8)
            os.write(writer, b"listening")
            while True:
                connection, _ = listener.accept()
                header = connection.recv(len(server.MAGIC) + server.HEADER.size)
                _, length = server.HEADER.unpack(header[len(server.MAGIC) :])
                while length > 0:
                    length -= len(connection.recv(min(length, 1 << 16)))
                connection.sendall(bytes([server.READY]))
                _, ancillary, _, _ = connection.recvmsg(1, socket.CMSG_SPACE(5 * 4))
                fds = struct.unpack("5i", ancillary[0][2][:20])
                connection.sendall(bytes([server.STARTED]))
                os.write(fds[1], FORGED.encode())
                for fd in fds:
                    os.close(fd)
                connection.sendall(bytes([0]))
                connection.close()
        finally:
            os._exit(0)
    os.close(writer)
    try:
        assert os.read(reader, 9) == b"listening"
    finally:
        os.close(reader)
    return child


NOBODY = 65534


def test_a_launcher_hands_no_call_to_a_server_that_is_not_root(lab: Lab, open_directory: Path):
    socket_path = open_directory / "cni.sock"
    forger = _forger(socket_path)
    try:
        lab.bin_dir = lab.tmp / "warm-bin"
        install(lab.bin_dir, warm_socket=str(socket_path))
        conflist = lab.network(networks.BRIDGE)
        answer = calls.call(lab, calls.request(conflist), calls.environment("ADD", lab.pod("p")))
    finally:
        os.kill(forger, signal.SIGKILL)
        os.waitpid(forger, 0)
    assert answer.status == 0, answer.stdout
    (result,) = answer.documents()
    assert "forged" not in result
    assert result["ips"][0]["address"].startswith("10.77.0.")


def test_the_server_refuses_a_socket_directory_others_may_write(open_directory: Path):
    """Whoever may write there could put their own server at the socket's name."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "serve-cni",
            "--socket",
            str(open_directory / "cni.sock"),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # the refusal, or "... listening on ..."
    finally:
        process.kill()
        process.wait()
    assert "writable by others" in first, first
    assert not (open_directory / "cni.sock").exists()
