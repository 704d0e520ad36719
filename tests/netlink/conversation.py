"""Netlink conversations kept as text: what netc sent, what the kernel answered.

A reply file under tests/netlink/replies/ is one conversation: comment lines
(`#`), then one line per datagram in order, `>` for a request netc sent and
`<` for a datagram the kernel answered, each as hex.  `Replay` plays one back
to netc's `Channel` in place of a socket: it checks that netc sends what was
sent at recording time and hands over the kernel's datagrams one `recv()` at
a time, as the kernel did.  `Capture` is the other stand-in, for encoding
tests: it keeps what netc sends and answers as briefly as the kernel would.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from pathlib import Path

from runtime.netlink import wire

REPLIES = Path(__file__).parent / "replies"
SENT, RECEIVED = ">", "<"


class Datagrams:
    """A fake socket's side of `Channel._receive`: each datagram its `recv` gives, read into
    the channel's buffer as the kernel's would be."""

    def recv(self, size: int) -> bytes:
        raise NotImplementedError

    def recv_into(self, buffer: bytearray) -> int:
        data = self.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class Conversation:
    """The datagrams of one recording, in order, with the comment that says what it is."""

    comment: list[str]
    datagrams: list[tuple[str, bytes]]

    @classmethod
    def load(cls, name: str, directory: Path = REPLIES) -> Conversation:
        """The conversation recorded as NAME.txt (in replies/ unless told)."""
        comment, datagrams = [], []
        for line in (directory / f"{name}.txt").read_text().splitlines():
            if line.startswith("#"):
                comment.append(line[1:].strip())
            elif line.strip():
                direction, data = line.split(" ", 1)
                datagrams.append((direction, bytes.fromhex(data)))
        return cls(comment, datagrams)

    def save(self, name: str, directory: Path = REPLIES) -> None:
        """Write the conversation as NAME.txt (in replies/ unless told)."""
        lines = [f"# {text}" for text in self.comment]
        lines += [f"{direction} {data.hex()}" for direction, data in self.datagrams]
        directory.mkdir(exist_ok=True)
        (directory / f"{name}.txt").write_text("\n".join(lines) + "\n")

    def received(self) -> list[list[wire.Message]]:
        """The kernel's datagrams, each as its messages."""
        return [
            list(wire.messages(data)) for direction, data in self.datagrams if direction == RECEIVED
        ]


class Replay(Datagrams):
    """A socket that replays a conversation to netc, checking what netc sends."""

    def __init__(self, datagrams: list[tuple[str, bytes]]) -> None:
        self.datagrams = list(datagrams)
        self.position = 0

    def send(self, data: bytes) -> int:
        recorded = self._next(SENT, "sent a request")
        assert data.hex() == recorded.hex(), (
            "netc sends other bytes than when this reply was recorded "
            "(re-record with tests/netlink/record.py if the change is meant)"
        )
        return len(data)

    def recv(self, size: int) -> bytes:
        data = self._next(RECEIVED, "reads a reply")
        assert len(data) <= size, "the recorded datagram is larger than netc's receive buffer"
        return data

    def setsockopt(self, level: int, option: int, value: int) -> None:
        """Options changed how the recorded kernel answered, not what this replays."""

    def close(self) -> None:
        """Nothing to release."""

    @property
    def finished(self) -> bool:
        """Every recorded datagram was sent or received."""
        return self.position == len(self.datagrams)

    def _next(self, direction: str, doing: str) -> bytes:
        assert self.position < len(self.datagrams), f"netc {doing} after the recording ended"
        found, data = self.datagrams[self.position]
        assert found == direction, f"netc {doing} where the recording has '{found}'"
        self.position += 1
        return data


class Capture(Datagrams):
    """A socket that keeps what netc sends and answers like a kernel that has nothing.

    A change is acknowledged (each of a batch that asks), a dump is empty, a get finds
    nothing (ENOENT):
    enough for netc to finish each call; the tests look at what was sent.
    """

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.answers: list[bytes] = []
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        batch = list(wire.messages(data))
        if len(batch) > 1:  # nfnetlink's batch: the messages asking for it are acknowledged
            self.answers += [_acknowledged(m, 0) for m in batch if m.flags & wire.NLM_F_ACK]
            return len(data)
        (request,) = batch
        flags = request.flags
        if flags & wire.NLM_F_ACK or flags & wire.NLM_F_DUMP != wire.NLM_F_DUMP:
            self.answers.append(
                _acknowledged(request, 0 if flags & wire.NLM_F_ACK else -errno.ENOENT)
            )
        else:
            self.answers.append(
                wire.message(wire.NLMSG_DONE, wire.NLM_F_MULTI, request.seq, struct.pack("=i", 0))
            )
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.answers.pop(0)

    def close(self) -> None:
        """Nothing to release."""


def _acknowledged(request: wire.Message, code: int) -> bytes:
    """The kernel's NLMSG_ERROR for a request (0: acknowledged), echoing its header."""
    size = wire.HEADER.size + len(request.body)
    echoed = wire.HEADER.pack(size, request.kind, request.flags, request.seq, request.port)
    return wire.message(wire.NLMSG_ERROR, 0, request.seq, struct.pack("=i", code) + echoed)
