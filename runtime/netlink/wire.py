"""Netlink wire format: message headers and type-length-value attributes.

Just enough of the format to build and read rtnetlink messages: an `Attr`
is (type, payload), nested attributes are attributes whose payload is more
attributes.  Everything is little-endian host order, 4-byte aligned.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

HEADER = struct.Struct("=IHHII")
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

NLMSG_ERROR = 2
NLMSG_DONE = 3


def align(size: int) -> int:
    """Netlink pads every header and attribute to 4 bytes."""
    return (size + 3) & ~3


@dataclass(frozen=True, slots=True)
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
    return dict(iter_attrs(data, offset))


def iter_attrs(data: bytes | memoryview, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each attribute from `offset` on, in order."""
    view = memoryview(data)
    while offset + ATTR_HEADER.size <= len(view):
        size, kind = ATTR_HEADER.unpack_from(view, offset)
        if size < ATTR_HEADER.size:
            return
        yield kind & NLA_TYPE_MASK, bytes(view[offset + ATTR_HEADER.size: offset + size])
        offset += align(size)


def get_u32(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    """A 32-bit attribute's value, or `default` when absent."""
    value = attrs.get(kind)
    return struct.unpack("=I", value[:4])[0] if value else default


def get_string(attrs: dict[int, bytes], kind: int) -> str | None:
    """A string attribute's value without its NUL, or None when absent."""
    value = attrs.get(kind)
    return value.split(b"\0", 1)[0].decode() if value is not None else None


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A complete netlink message."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body
