"""A synchronous netlink socket: send a request, read its acknowledgement or dump.

A socket belongs to the network namespace it was created in, whatever the
process does afterwards; `runtime.netns` relies on that to talk to a pod's
namespace without staying in it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from runtime.netlink.wire import (
    HEADER,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    message,
)

NETLINK_ROUTE = 0
RECEIVE_BUFFER = 1 << 20


class NetlinkError(OSError):
    """The kernel refused a request; `errno` says why (EEXIST, ENODEV, ...)."""

    def __init__(self, code: int, request: str) -> None:
        super().__init__(code, f"{request}: {os.strerror(code)}")
        self.request = request


class NetlinkSocket:
    """One netlink socket with a sequence counter; not thread-safe, not needed to be."""

    def __init__(self, protocol: int = NETLINK_ROUTE) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        """Release the socket."""
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Send a change and wait for the kernel's acknowledgement."""
        seq = self._send(kind, flags | NLM_F_REQUEST | NLM_F_ACK, body)
        for _ in self._replies(seq, what):
            pass

    def dump(self, kind: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Every (message type, body) of a dump request."""
        seq = self._send(kind, NLM_F_REQUEST | NLM_F_DUMP, body)
        return list(self._replies(seq, what))

    def get(self, kind: int, body: bytes, what: str) -> bytes:
        """The body of the one message a get request answers with."""
        seq = self._send(kind, NLM_F_REQUEST, body)
        for _, reply in self._replies(seq, what):
            return reply
        raise NetlinkError(errno.ENOENT, what)

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(message(kind, flags, self.seq, body))
        return self.seq

    def _replies(self, seq: int, what: str):
        """Yield reply bodies until the request is done, raising on a kernel error."""
        while True:
            data = self.sock.recv(RECEIVE_BUFFER)
            offset = 0
            while offset + HEADER.size <= len(data):
                length, kind, flags, reply_seq, _ = HEADER.unpack_from(data, offset)
                body = data[offset + HEADER.size: offset + length]
                offset += (length + 3) & ~3
                if reply_seq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise NetlinkError(code, what)
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, body
                if not flags & NLM_F_MULTI:  # a single answer
                    return
