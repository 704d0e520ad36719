"""A synchronous netlink channel: send a request, read its acknowledgement or dump.

A socket belongs to the network namespace it was created in, whatever the
process does afterwards; `runtime.netns` relies on that to talk to a pod's
namespace without staying in it.

The socket asks for extended acknowledgements, so a refusal carries the
kernel's own reason ("Unknown device type") next to the errno.  Replies are
read with the sharp edges filed off: a malformed header is an error, not a
loop; NLMSG_NOOP is skipped; NLMSG_OVERRUN (replies lost) is an error; a dump
the kernel flags NLM_F_DUMP_INTR (the objects changed while it listed them)
is asked again, a bounded number of times.

The socket is `_socket`'s, the C type under the `socket` module: the plugin
needs nothing else of it, and importing `socket` (its enums of constants,
selectors) would cost every CNI call (docs/benchmarks.md, the start-up tricks).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import mmap
import os
from collections.abc import Iterator, Sequence
from time import perf_counter

from runtime.netlink.wire import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    NLMSG_OVERRUN,
    MalformedReply,
    Message,
    message,
    messages,
    outcome,
)
from runtime.spent import SECONDS

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
RECEIVE_BUFFER = 1 << 20
DUMP_ATTEMPTS = 5
"""How often a dump is asked for before concurrent changes count as a failure."""


class NetlinkError(OSError):
    """The kernel refused a request; `errno` says why (EEXIST, ENODEV, ...).

    `detail` is the kernel's extended-ack text when it gave one, or netc's
    description of a reply it could not use.
    """

    def __init__(self, code: int, request: str, detail: str | None = None) -> None:
        reason = f"{os.strerror(code)}: {detail}" if detail else os.strerror(code)
        super().__init__(code, f"{request}: {reason}")
        self.request = request
        self.detail = detail


def netlink_socket(protocol: int = NETLINK_ROUTE) -> _socket.socket:
    """A bound netlink socket (rtnetlink unless told) asking for extended, capped acks.

    Capped: an error echoes only the header of the failed request, not all of
    it.  Kernels before 4.12 know neither option; their errors just have no text.
    """
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, protocol)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, RECEIVE_BUFFER)
    for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_NETLINK, option, 1)
    sock.bind((0, 0))
    return sock


class Channel:
    """Requests and their replies over one socket, with a sequence counter.

    Not thread-safe, and not needed to be.  `sock` is anything with send,
    recv_into and close; a new `netlink_socket()` unless given (the codec's
    tests hand in recorded kernel replies).
    """

    def __init__(self, sock: _socket.socket | None = None) -> None:
        self.sock = sock if sock is not None else netlink_socket()
        self.seq = 0
        self._buffer: mmap.mmap | None = None
        """Where every datagram is read (`_receive`), mapped at the first."""

    @contextlib.contextmanager
    def strictly(self) -> Iterator[None]:
        """Requests the kernel checks strictly meanwhile, and so filters dumps by the header.

        NETLINK_GET_STRICT_CHK (Linux 4.20): a dump of one link's addresses
        then walks that link alone, not every link of a node with hundreds
        of pods.  An older kernel refuses the option and filters nothing, so
        callers filter what they get as well.  Only for the requests made
        meanwhile: other dumps were written for the lenient checks.
        """
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        except OSError:
            yield
            return
        try:
            yield
        finally:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 0)

    def close(self) -> None:
        """Release the socket and the receive buffer."""
        self.sock.close()
        if self._buffer is not None:
            self._buffer.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Send a change and wait for the kernel's acknowledgement."""
        seq = self._send(kind, flags | NLM_F_REQUEST | NLM_F_ACK, body)
        self._replies(seq, what)

    def dump(self, kind: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Every (message type, body) of a dump request, from one consistent listing."""
        for _ in range(DUMP_ATTEMPTS):
            seq = self._send(kind, NLM_F_REQUEST | NLM_F_DUMP, body)
            replies, interrupted = self._replies(seq, what)
            if not interrupted:
                return [(reply.kind, reply.body) for reply in replies]
        raise NetlinkError(
            errno.EINTR,
            what,
            f"the listing changed while the kernel gave it, "
            f"{DUMP_ATTEMPTS} times in a row (NLM_F_DUMP_INTR)",
        )

    def get(self, kind: int, body: bytes, what: str) -> bytes:
        """The body of the one message a get request answers with."""
        seq = self._send(kind, NLM_F_REQUEST, body)
        replies, _ = self._replies(seq, what)
        if not replies:
            raise NetlinkError(errno.ENOENT, what)
        return replies[0].body

    def batch(self, requests: Sequence[tuple[int, int, bytes]], what: str) -> None:
        """Send requests in one datagram; wait for the acknowledgement of each that asks one.

        For nfnetlink's transactions: its batch begin and end messages ask
        for none.  An error for any message of the batch, acknowledged or
        not, is raised (the kernel then applied none of it).
        """
        first = self.seq + 1
        datagram, waiting = b"", set()
        for kind, flags, body in requests:
            self.seq += 1
            datagram += message(kind, flags | NLM_F_REQUEST, self.seq, body)
            if flags & NLM_F_ACK:
                waiting.add(self.seq)
        self._transmit(datagram)
        with _well_formed(what):
            self._acknowledged(range(first, self.seq + 1), waiting, what)

    def _acknowledged(self, batch: range, waiting: set[int], what: str) -> None:
        while waiting:
            for reply in self._receive():
                if reply.seq not in batch or reply.kind != NLMSG_ERROR:
                    continue
                code, text = outcome(reply)
                if code > 0:
                    raise NetlinkError(code, what, text)
                waiting.discard(reply.seq)

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self._transmit(message(kind, flags, self.seq, body))
        return self.seq

    def _transmit(self, datagram: bytes) -> None:
        started = perf_counter()
        self.sock.send(datagram)
        SECONDS["netlink"] += perf_counter() - started

    def _receive(self) -> list[Message]:
        """The messages of the next datagram, all of them checked first.

        Read into the one buffer the channel keeps: `recv(RECEIVE_BUFFER)`
        maps a fresh megabyte for every datagram, then shrinks and unmaps it
        (docs/benchmarks.md has what that cost).  The buffer is an anonymous
        mapping, so only the pages a datagram fills are ever touched.
        """
        if self._buffer is None:
            self._buffer = mmap.mmap(-1, RECEIVE_BUFFER)
        started = perf_counter()
        size = self.sock.recv_into(self._buffer)
        SECONDS["netlink"] += perf_counter() - started
        return list(messages(self._buffer[:size]))

    def _replies(self, seq: int, what: str) -> tuple[list[Message], bool]:
        """The data messages answering request `seq`, and whether a dump was interrupted.

        Reads until the request is done: its acknowledgement, NLMSG_DONE, or
        its one message when that is not part of a multi-part answer.  Raises
        on a kernel error, an overrun, or a malformed reply.
        """
        with _well_formed(what):
            return self._read(seq, what)

    def _read(self, seq: int, what: str) -> tuple[list[Message], bool]:
        found: list[Message] = []
        interrupted = False
        while True:
            for reply in self._receive():
                if reply.seq != seq or reply.kind == NLMSG_NOOP:
                    continue
                interrupted |= bool(reply.flags & NLM_F_DUMP_INTR)
                if reply.kind in (NLMSG_ERROR, NLMSG_DONE):
                    code, text = outcome(reply)
                    if code > 0:
                        raise NetlinkError(code, what, text)
                    return found, interrupted
                if reply.kind == NLMSG_OVERRUN:
                    raise NetlinkError(
                        errno.ENOBUFS, what, "the kernel lost replies (NLMSG_OVERRUN)"
                    )
                found.append(reply)
                if not reply.flags & NLM_F_MULTI:
                    return found, interrupted


@contextlib.contextmanager
def _well_formed(what: str) -> Iterator[None]:
    """A reply that is not netlink messages (`MalformedReply`) as the request's `NetlinkError`."""
    try:
        yield
    except MalformedReply as error:
        raise NetlinkError(errno.EBADMSG, what, f"malformed reply: {error}") from None
