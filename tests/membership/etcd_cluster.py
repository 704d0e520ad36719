"""A real etcd cluster for the tests: three members of Debian's etcd-server on the underlay.

Each member is a namespace of a simulated cluster (tests/cluster/sim.py) on
its switch, at 198.18.10.201-203, so the simulated nodes reach etcd as real
nodes reach theirs: over the network between them.  Members can be stopped,
started again with their data, frozen and thawed; every process is stopped
by its PID when the cluster's namespaces are removed.  With `tls` the test
makes its own CA, a server certificate for the members' addresses and a
client certificate, and etcd requires them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from runtime.etcd import Etcd, Tls, Unavailable
from runtime.netns import node_namespace
from tests.cluster.sim import SimCluster

FIRST_HOST = 201
CLIENT_PORT = 2379
PEER_PORT = 2380


class EtcdCluster:
    """`size` etcd members on the simulated cluster's underlay."""

    def __init__(
        self,
        sim: SimCluster,
        size: int = 3,
        *,
        tls: bool = False,
        election_ms: int = 500,
    ) -> None:
        """`election_ms`: raft's election timeout, the heartbeat a tenth of it; the tests'
        500 ms finds a lost leader quickly, a machine whose CPUs other work keeps busy
        needs more, or its members call elections they need not."""
        self.sim = sim
        self.size = size
        self.election_ms = election_ms
        self.directory = sim.tmp / "etcd"
        self.directory.mkdir(exist_ok=True)
        self.tls = certificates(self.directory, self.addresses) if tls else None
        self.namespaces = [sim.add_host(f"etcd-{i + 1}", FIRST_HOST + i) for i in range(size)]
        self.processes: list[subprocess.Popen | None] = [None] * size
        for index in range(size):
            self.start(index)
        self.wait_healthy()

    @property
    def addresses(self) -> list[str]:
        return [f"198.18.10.{FIRST_HOST + i}" for i in range(self.size)]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoints(self) -> list[str]:
        return [f"{self.scheme}://{a}:{CLIENT_PORT}" for a in self.addresses]

    def name(self, index: int) -> str:
        return f"m{index + 1}"

    def start(self, index: int) -> None:
        """Member `index` running (again, from its data directory)."""
        address = self.addresses[index]
        peers = ",".join(
            f"{self.name(i)}=http://{a}:{PEER_PORT}" for i, a in enumerate(self.addresses)
        )
        command = [
            "etcd",
            "--name",
            self.name(index),
            "--data-dir",
            str(self.directory / self.name(index)),
            "--listen-client-urls",
            f"{self.scheme}://{address}:{CLIENT_PORT}",
            "--advertise-client-urls",
            f"{self.scheme}://{address}:{CLIENT_PORT}",
            "--listen-peer-urls",
            f"http://{address}:{PEER_PORT}",
            "--initial-advertise-peer-urls",
            f"http://{address}:{PEER_PORT}",
            "--initial-cluster",
            peers,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            self.sim.tag,
            "--logger",
            "zap",
            "--log-outputs",
            str(self.directory / f"{self.name(index)}.log"),
            "--heartbeat-interval",
            str(self.election_ms // 10),
            "--election-timeout",
            str(self.election_ms),
        ]
        if self.tls:
            command += [
                "--cert-file",
                self.tls["server.crt"],
                "--key-file",
                self.tls["server.key"],
                "--client-cert-auth",
                "--trusted-ca-file",
                self.tls["ca.crt"],
            ]
        self.processes[index] = self.sim.spawn(self.namespaces[index], *command)

    def stop(self, index: int) -> None:
        """Member `index` killed (its data stays for `start`)."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.processes[index] = None

    def freeze(self, index: int) -> None:
        process = self.processes[index]
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        process = self.processes[index]
        assert process is not None
        os.kill(process.pid, signal.SIGCONT)

    def client(self, *, timeout: float = 5.0) -> Etcd:
        """A client of every member, with the test's client certificate when TLS is on."""
        tls = (
            Tls(self.tls["ca.crt"], self.tls["client.crt"], self.tls["client.key"])
            if self.tls
            else None
        )
        return Etcd(self.endpoints, tls, timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until a write goes through (a leader elected, a quorum of members up)."""
        client = self.client(timeout=2.0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with node_namespace(self.sim.client):
                    client.call("/v3/kv/put", {"key": "aGVhbHRo", "value": ""})
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def log(self, index: int) -> str:
        path = self.directory / f"{self.name(index)}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def certificates(directory: Path, addresses: list[str]) -> dict[str, str]:
    """A CA, a server certificate for `addresses` and a client certificate, made here."""
    files = {
        name: str(directory / name)
        for name in ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")
    }

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        files["ca.key"],
        "-out",
        files["ca.crt"],
        "-days",
        "2",
        "-subj",
        "/CN=netc test CA",
    )
    for who, extension in (
        (
            "server",
            "subjectAltName="
            + ",".join(f"IP:{a}" for a in addresses)
            + "\nextendedKeyUsage=serverAuth,clientAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        request = directory / f"{who}.csr"
        openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            files[f"{who}.key"],
            "-out",
            str(request),
            "-subj",
            f"/CN=netc test {who}",
        )
        extensions = directory / f"{who}.ext"
        extensions.write_text(extension + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            str(request),
            "-CA",
            files["ca.crt"],
            "-CAkey",
            files["ca.key"],
            "-CAcreateserial",
            "-out",
            files[f"{who}.crt"],
            "-days",
            "2",
            "-extfile",
            str(extensions),
        )
    for name in ("ca.key", "server.key", "client.key"):
        os.chmod(files[name], 0o600)
    return files
