"""What an ELF file asks of the loader: its machine, its interpreter, the libraries it needs.

The image builder reads these instead of asking `ldd`, which can only run
binaries of this machine's architecture: an arm64 image is assembled on an
amd64 machine from Debian's arm64 packages, whose programs cannot run here.
Only 64-bit little-endian files are read (x86-64 and AArch64, the
architectures images are built for); anything else is refused by name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\x7fELF"
CLASS_64, LITTLE_ENDIAN = 2, 1
HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")
DYNAMIC_ENTRY = struct.Struct("<qQ")
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5
MACHINES = {62: "x86-64", 183: "aarch64"}
"""e_machine values, named as `file` names them."""


class ElfError(ValueError):
    """A file that is not an ELF file this module reads."""


@dataclass(frozen=True)
class Elf:
    """The loader's view of one binary or shared library."""

    machine: int
    interpreter: str | None
    """PT_INTERP: the dynamic loader's path, for executables."""
    needed: tuple[str, ...]
    """DT_NEEDED: the sonames of the libraries it links, in order."""


def read_elf(path: Path) -> Elf:
    """Parse the headers of `path`: its machine, interpreter and needed libraries."""
    data = path.read_bytes()
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise ElfError(f"{path}: not an ELF file")
    if data[4] != CLASS_64 or data[5] != LITTLE_ENDIAN:
        raise ElfError(f"{path}: not a 64-bit little-endian ELF file")
    fields = HEADER.unpack_from(data)
    machine, program_offset, entry_size, entries = fields[2], fields[5], fields[9], fields[10]
    segments = [
        PROGRAM_HEADER.unpack_from(data, program_offset + i * entry_size) for i in range(entries)
    ]
    interpreter = next((_string(data, s[2]) for s in segments if s[0] == PT_INTERP), None)
    dynamic = next((s for s in segments if s[0] == PT_DYNAMIC), None)
    needed = _needed(data, dynamic, segments) if dynamic is not None else ()
    return Elf(machine, interpreter, needed)


def _needed(
    data: bytes, dynamic: tuple[int, ...], segments: list[tuple[int, ...]]
) -> tuple[str, ...]:
    """The DT_NEEDED names of the dynamic section, looked up in its string table."""
    offsets: list[int] = []
    strings = None
    for position in range(dynamic[2], dynamic[2] + dynamic[5], DYNAMIC_ENTRY.size):
        tag, value = DYNAMIC_ENTRY.unpack_from(data, position)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            offsets.append(value)
        elif tag == DT_STRTAB:
            strings = _file_offset(value, segments)
    if offsets and strings is None:
        raise ElfError("a dynamic section with DT_NEEDED entries but no string table")
    return tuple(_string(data, (strings or 0) + offset) for offset in offsets)


def _file_offset(address: int, segments: list[tuple[int, ...]]) -> int:
    """Where the loaded segment holding virtual `address` lies in the file."""
    for kind, _, offset, start, _, size, _, _ in segments:
        if kind == PT_LOAD and start <= address < start + size:
            return address - start + offset
    raise ElfError(f"address {address:#x} is in no loaded segment")


def _string(data: bytes, offset: int) -> str:
    """The NUL-terminated string at `offset`."""
    end = data.index(b"\0", offset)
    return data[offset:end].decode()
