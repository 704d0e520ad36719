"""CNI calls made by hand: the request on stdin and the CNI_* environment, as bytes if need be.

The fault suites talk to the launcher the way a runtime does -- environment
and stdin in, one JSON document and an exit status out -- so they can send
what no well-behaved driver would.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kernel.lab import Lab, Pod

BASE_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
LONG = os.environ.get("NETC_FAULTS_LONG") == "1"
"""The on-demand mode: every kill point, moment and payload instead of a sample."""


def sample(items: Sequence[Any], lean: int) -> list[Any]:
    """All of `items` in the long mode, else `lean` of them spread from first to last."""
    if LONG or len(items) <= lean:
        return list(items)
    step = (len(items) - 1) / (lean - 1)
    return [items[round(index * step)] for index in range(lean)]


def request(
    conflist: Path,
    runtime_config: Mapping[str, Any] | None = None,
    version: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The plugin's stdin for `conflist`, as libcni writes it (name and cniVersion injected)."""
    document = json.loads(conflist.read_text())
    config = {
        **document["plugins"][0],
        "name": document["name"],
        "cniVersion": version or document["cniVersion"],
        **fields,
    }
    if runtime_config is not None:
        config["runtimeConfig"] = dict(runtime_config)
    return config


def environment(
    command: str, pod: Pod, overrides: Mapping[Any, Any] | None = None
) -> dict[Any, Any]:
    """The CNI_* variables of a call for `pod` (CNI_PATH included, as libcni sends it).

    `overrides` replace or add variables; keys and values may be bytes.
    """
    variables: dict[Any, Any] = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": pod.netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "",
        "CNI_PATH": "/usr/lib/cni",
    }
    variables.update(overrides or {})
    return variables


def port_mappings(count: int, first: int = 30000) -> list[dict[str, Any]]:
    """`count` TCP mappings as podman sends them."""
    return [
        {"hostPort": first + n, "containerPort": 80 + n, "protocol": "tcp"} for n in range(count)
    ]


@dataclass(frozen=True)
class Answer:
    """What a call gave back: its exit status, stdout, stderr."""

    status: int
    stdout: bytes
    stderr: bytes

    def documents(self) -> list[Any]:
        """The JSON documents on stdout (a CNI plugin must write at most one)."""
        decoder = json.JSONDecoder()
        text = self.stdout.decode()
        found, index = [], 0
        while index < len(text):
            if text[index].isspace():
                index += 1
                continue
            document, index = decoder.raw_decode(text, index)
            found.append(document)
        return found

    def error(self) -> dict[str, Any]:
        """The call's one CNI error object; fails the test on anything else."""
        documents = self.documents()
        assert self.status != 0, f"expected a failure, got {documents}"
        assert len(documents) == 1, f"expected one JSON document on stdout, got {documents}"
        assert "Traceback" not in self.stderr.decode(errors="replace"), self.stderr.decode()
        (document,) = documents
        assert isinstance(document.get("code"), int) and isinstance(document.get("msg"), str)
        return document


def launcher_command(lab: Lab, wrapper: Sequence[str] = ()) -> list[str]:
    """The launcher in the node namespace, optionally under a wrapper (strace, unshare)."""
    return ["ip", "netns", "exec", lab.node, *wrapper, str(lab.bin_dir / "netc-cni")]


def call(
    lab: Lab,
    stdin: bytes | str | Mapping[str, Any],
    variables: Mapping[Any, Any],
    wrapper: Sequence[str] = (),
    timeout: float = 120,
) -> Answer:
    """Run the lab's netc-cni with exactly these variables (plus PATH) and this stdin."""
    data = _encode(stdin)
    done = subprocess.run(
        launcher_command(lab, wrapper),
        input=data,
        env={**BASE_ENVIRONMENT, **variables},
        capture_output=True,
        check=False,
        timeout=timeout,
    )
    return Answer(done.returncode, done.stdout, done.stderr)


def start(
    lab: Lab,
    stdin: bytes | str | Mapping[str, Any],
    variables: Mapping[Any, Any],
    wrapper: Sequence[str] = (),
) -> subprocess.Popen:
    """The same call in the background (to be killed); its stdin is written and closed."""
    process = subprocess.Popen(
        launcher_command(lab, wrapper),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**BASE_ENVIRONMENT, **variables},
    )
    assert process.stdin is not None
    process.stdin.write(_encode(stdin))
    process.stdin.close()
    process.stdin = None  # written: communicate() only reads
    return process


def _encode(stdin: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(stdin, bytes):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode()
    return json.dumps(stdin).encode()
