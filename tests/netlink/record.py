"""Record the kernel replies the codec tests decode: `python -m tests.netlink.record`.

As root, under the kernel-test lock (it creates namespaces):

    flock /tmp/netc-kernel.lock .venv/bin/python -m tests.netlink.record [SCENE ...]

It builds the state of `scenes.py` with iproute2 in three new namespaces
(random names, never the root namespace), runs each scene's netc call over a
socket that keeps every datagram, writes replies/SCENE.txt, and deletes the
namespaces, also after a failure.  Review `git diff tests/netlink/replies`
before committing a re-recording.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime.netlink.channel import (
    NETLINK_CAP_ACK,
    SOL_NETLINK,
    Channel,
    NetlinkError,
    netlink_socket,
)
from runtime.netlink.rtnl import Rtnl
from runtime.netns import Netns
from tests.netlink import scenes
from tests.netlink.conversation import RECEIVED, REPLIES, SENT, Conversation, Datagrams

RECORDING_BUFFER = 4096


class Tee(Datagrams):
    """A socket that keeps every datagram it sends and receives.

    It reads at most RECORDING_BUFFER bytes at a time: the kernel sizes dump
    datagrams by what the reader asks for, so dumps come in several small
    datagrams and the recordings stay small.  `after_first_reply` runs right
    after the first datagram answering a request arrives (the recorder's
    chance to change the namespace mid-dump).
    """

    def __init__(self, sock: socket.socket, after_first_reply: Callable[[int], None]) -> None:
        self.sock = sock
        self.after_first_reply = after_first_reply
        self.datagrams: list[tuple[str, bytes]] = []
        self.requests = 0
        self.answered = True

    def send(self, data: bytes) -> int:
        self.datagrams.append((SENT, data))
        self.requests += 1
        self.answered = False
        return self.sock.send(data)

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(min(size, RECORDING_BUFFER))
        self.datagrams.append((RECEIVED, data))
        if not self.answered:
            self.answered = True
            self.after_first_reply(self.requests)
        return data

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.sock.setsockopt(level, option, value)

    def close(self) -> None:
        self.sock.close()


def sh(command: list[str], stdin: str | None = None) -> None:
    """Run an iproute2 command; its error output on failure."""
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)}: {done.stderr.strip()}")


@contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, str]]:
    """New namespaces (role -> name, a random tag in each name), deleted afterwards."""
    tag = "ncnl" + secrets.token_hex(3)
    names = {role: f"{tag}-{role}" for role in roles}
    made = []
    try:
        for name in names.values():
            sh(["ip", "netns", "add", name])
            made.append(name)
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


def record(
    scene: scenes.Scene, handles: dict[str, Netns], names: dict[str, str], directory: Path
) -> None:
    """Run one scene against the kernel and save the conversation.

    Addresses the scene's meddling added are removed again, so that every
    scene starts from the same state.
    """
    added: list[str] = []

    def meddle(request: int) -> None:
        if scene.meddle == "always" or (scene.meddle == "once" and request == 1):
            added.append(scenes.meddled_address(len(added) + 1))
            _address(names, "add", added[-1])

    with handles[scene.netns].entered():
        sock = netlink_socket()
    if not scene.capped:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 0)
    tee = Tee(sock, meddle)
    channel = Channel(tee)
    try:
        scene.call(Rtnl(channel))
    except NetlinkError as error:
        print(f"{scene.name}: {error}")
    finally:
        channel.close()
        for cidr in added:
            _address(names, "del", cidr)
    release = os.uname().release
    Conversation(
        [f"{scene.name}: {scene.what}", f"recorded by tests/netlink/record.py on Linux {release}"],
        tee.datagrams,
    ).save(scene.name, directory)


def _address(names: dict[str, str], verb: str, cidr: str) -> None:
    sh(["ip", "-n", names[scenes.MANY], "address", verb, cidr, "dev", scenes.MANY_BRIDGE.name])


def record_all(directory: Path, wanted: list[str] | None = None) -> None:
    """Record the scenes named (all of them by default) into `directory`."""
    wanted = wanted or []
    unknown = set(wanted) - set(scenes.SCENES)
    if unknown:
        raise SystemExit(f"no such scene: {', '.join(sorted(unknown))}")
    chosen = [scene for scene in scenes.SCENES.values() if not wanted or scene.name in wanted]
    with namespaces(scenes.NODE, scenes.POD, scenes.MANY) as names:
        for command in scenes.setup(names):
            sh(command)
        sh(["ip", "-n", names[scenes.MANY], "-batch", "-"], stdin=scenes.many_batch())
        handles = {role: Netns(f"/run/netns/{name}") for role, name in names.items()}
        os.dup2(handles[scenes.POD].fd, scenes.POD_FD)
        try:
            for scene in chosen:
                record(scene, handles, names, directory)
        finally:
            os.close(scenes.POD_FD)
            for handle in handles.values():
                handle.close()


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("recording needs root (it creates network namespaces)")
    record_all(REPLIES, sys.argv[1:])
