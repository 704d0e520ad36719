"""Netlink wire format: message headers and type-length-value attributes.

Just enough of the format to build and read rtnetlink messages: an `Attr`
is (type, payload), nested attributes are attributes whose payload is more
attributes.  Numbers are in the host's byte order (netlink is never sent
across machines), headers and attributes 4-byte aligned.  Reading is
defensive: a reply is kernel data, but a header that cannot be right (shorter
than itself, longer than its datagram) is an error, never a loop.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

from compiler.datatypes import frozen

HEADER = struct.Struct("=IHHII")
ERROR_CODE = struct.Struct("=i")
ATTR_HEADER = struct.Struct("=HH")
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

NLM_F_REQUEST = 0x001
NLM_F_MULTI = 0x002
NLM_F_ACK = 0x004
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP_INTR = 0x010
"""In a dump reply: the objects changed while the kernel was listing them."""
NLM_F_CAPPED = 0x100
"""In an error reply: the failed request is echoed by its header only."""
NLM_F_ACK_TLVS = 0x200
"""In an error or done reply: extended-acknowledgement attributes follow."""

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLMSGERR_ATTR_MSG = 1


def align(size: int) -> int:
    """Netlink pads every header and attribute to 4 bytes."""
    return (size + 3) & ~3


@frozen
class Attr:
    """One attribute to send: `payload` is bytes or a list of nested attributes."""

    kind: int
    payload: bytes | list[Attr]

    def encode(self) -> bytes:
        """The attribute with its header and padding."""
        if isinstance(self.payload, list):
            body = b"".join(a.encode() for a in self.payload)
            kind = self.kind | NLA_F_NESTED
        else:
            body = self.payload
            kind = self.kind
        size = ATTR_HEADER.size + len(body)
        return ATTR_HEADER.pack(size, kind) + body + b"\0" * (align(size) - size)


def u8(kind: int, value: int) -> Attr:
    """An 8-bit attribute."""
    return Attr(kind, struct.pack("=B", value))


def u32(kind: int, value: int) -> Attr:
    """A 32-bit attribute."""
    return Attr(kind, struct.pack("=I", value))


def u64(kind: int, value: int) -> Attr:
    """A 64-bit attribute."""
    return Attr(kind, struct.pack("=Q", value))


def string(kind: int, value: str) -> Attr:
    """A NUL-terminated string attribute."""
    return Attr(kind, value.encode() + b"\0")


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    """Attributes of a message body by type (the last one wins if repeated)."""
    return dict(attributes(data, offset))


def attributes(data: bytes | memoryview, offset: int = 0) -> list[tuple[int, bytes]]:
    """(type, payload) of each attribute from `offset` on, in order.

    One plain loop over bytes, with no generator and no memoryview: a pod's
    ADD reads some 25 links of ~50 attributes each, and this was 2-3 times
    slower as a generator of memoryview slices.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    found = []
    end, unpack, header = len(data), ATTR_HEADER.unpack_from, ATTR_HEADER.size
    while offset + header <= end:
        size, kind = unpack(data, offset)
        if size < header:
            break
        found.append((kind & NLA_TYPE_MASK, data[offset + header : offset + size]))
        offset += align(size)
    return found


def get_u32(attrs: Mapping[int, bytes], kind: int, default: int = 0) -> int:
    """A 32-bit attribute's value, or `default` when absent."""
    value = attrs.get(kind)
    return struct.unpack("=I", value[:4])[0] if value else default


def get_s32(attrs: Mapping[int, bytes], kind: int) -> int | None:
    """A signed 32-bit attribute's value, or None when absent."""
    value = attrs.get(kind)
    return struct.unpack("=i", value[:4])[0] if value else None


def get_string(attrs: Mapping[int, bytes], kind: int) -> str | None:
    """A string attribute's value without its NUL, or None when absent."""
    value = attrs.get(kind)
    return value.split(b"\0", 1)[0].decode() if value is not None else None


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A complete netlink message."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


@frozen
class Message:
    """One received netlink message: its header fields and its body."""

    kind: int
    flags: int
    seq: int
    body: bytes
    port: int = 0
    """The sender's netlink port (0: the kernel's own); an announcement carries its cause's."""


class MalformedReply(ValueError):
    """Bytes that are not netlink messages: a header that cannot be right, a short error."""


def messages(datagram: bytes) -> Iterator[Message]:
    """The messages of one received datagram, in order.

    The kernel never splits a message across datagrams, so a header claiming
    fewer bytes than itself (a zero length would never advance) or more than
    the datagram holds is malformed, as are stray bytes after the last one.
    """
    if not datagram:
        raise MalformedReply("an empty datagram")
    offset = 0
    while offset < len(datagram):
        if len(datagram) - offset < HEADER.size:
            raise MalformedReply(
                f"{len(datagram) - offset} stray bytes at byte {offset} "
                f"of a {len(datagram)}-byte datagram"
            )
        length, kind, flags, seq, port = HEADER.unpack_from(datagram, offset)
        if length < HEADER.size or offset + length > len(datagram):
            raise MalformedReply(
                f"a header at byte {offset} claims {length} bytes "
                f"of a {len(datagram)}-byte datagram"
            )
        yield Message(kind, flags, seq, datagram[offset + HEADER.size : offset + length], port)
        offset += align(length)


def outcome(message: Message) -> tuple[int, str | None]:
    """The errno of an NLMSG_ERROR or NLMSG_DONE (0: success) and the kernel's own text.

    The text is the NLMSGERR_ATTR_MSG of the extended acknowledgement, present
    when the flags say NLM_F_ACK_TLVS.  Its attributes follow the errno in a
    done message; in an error message they follow the echoed request -- only
    its header when NLM_F_CAPPED, else the whole of it.
    """
    if len(message.body) < ERROR_CODE.size:
        raise MalformedReply(f"a {len(message.body)}-byte body where an errno belongs")
    code = -ERROR_CODE.unpack_from(message.body)[0]
    if not message.flags & NLM_F_ACK_TLVS:
        return code, None
    offset = ERROR_CODE.size
    if message.kind == NLMSG_ERROR:
        if len(message.body) < offset + HEADER.size:
            raise MalformedReply("an error message without the header of the request")
        echoed = (
            HEADER.size
            if message.flags & NLM_F_CAPPED
            else HEADER.unpack_from(message.body, offset)[0]
        )
        offset += align(echoed)
    return code, get_string(parse_attrs(message.body, offset), NLMSGERR_ATTR_MSG)
