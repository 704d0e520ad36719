"""The pages a warm server's calls write: learned from the calls, copied ahead of the next one.

A call's process is a fork of the server and shares its memory copy-on-write:
each page the call writes (Python's reference counts touch them all over the
heap) is copied on its first write, a page fault on the call's path.  A
spare copies those pages while it waits (madvise(2) MADV_POPULATE_WRITE,
Linux 5.14), but only those: a call writes about a third of the server's
writable pages, and copying all of them would keep a spare busy three
times as long, on a CPU the calls need (docs/benchmarks.md).

Which pages those are, the calls tell: after its answer, a call's process
reads which of the server's pages it now holds alone (/proc/self/pagemap's
"exclusively mapped" bit, Linux 4.2) among those its spare was not given to
copy, and sends them to the server.  The server's memory does not move
after its start (it only forks), so what one call wrote the next will
write again; calls that teach nothing new for a while end the learning.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import struct
import sys
from collections.abc import Iterable, Iterator

from compiler.datatypes import frozen

PAGE = os.sysconf("SC_PAGE_SIZE")
MADV_POPULATE_WRITE = 23
"""madvise(2) advice (Linux 5.14): fault a range in for writing now, as writes would."""
STEP = 1 << 20
"""Bytes copied between two looks at whether a call is waiting."""
ENTRY = 8
"""Bytes of a /proc/PID/pagemap entry, a 64-bit number in this machine's byte order."""
FLAGS_BYTE = ENTRY - 1 if sys.byteorder == "little" else 0
"""The entry's byte holding bits 63 (the page is in memory) and 56 (mapped by this process
alone)."""
HELD = bytes(1 if byte & 0x81 == 0x81 else 0 for byte in range(256))
"""That byte, translated: 1 for a page in memory this process alone maps, else 0."""
RUNS = re.compile(b"\x01+")
RANGE = struct.Struct("=QQ")
"""A range on the wire: its start and end addresses, in this machine's order."""
MAX_RANGES = 1 << 16
"""More ranges than a report holds are not a report (a datagram of 1 MiB at most)."""

Range = tuple[int, int]
"""[start, end) in bytes, page-aligned."""


def merged(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """The same addresses as sorted ranges that neither touch nor overlap."""
    result: list[Range] = []
    for start, end in sorted(ranges):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(end, result[-1][1]))
        else:
            result.append((start, end))
    return tuple(result)


def without(ranges: tuple[Range, ...], taken: tuple[Range, ...]) -> Iterator[Range]:
    """The parts of `ranges` that no range of `taken` covers (both merged), in one sweep."""
    cuts = iter(taken)
    cut = next(cuts, None)
    for first, end in ranges:
        start = first
        while cut is not None and start < end:
            if cut[1] <= start:
                cut = next(cuts, None)
                continue
            if cut[0] >= end:
                break
            if cut[0] > start:
                yield start, cut[0]
            start = cut[1]
        if start < end:
            yield start, end


def encode(ranges: tuple[Range, ...]) -> bytes:
    """A report of `ranges`: one datagram, which the socket delivers whole or not at all."""
    return b"".join(RANGE.pack(start, end) for start, end in ranges)


def decode(data: bytes) -> tuple[Range, ...]:
    """Ranges a report carries; none from a report that is not one (only ours can send it)."""
    if len(data) % RANGE.size or len(data) // RANGE.size > MAX_RANGES:
        return ()
    ranges = tuple(RANGE.iter_unpack(data))
    if any(start % PAGE or end % PAGE or start >= end for start, end in ranges):
        return ()
    return ranges


def writable_now() -> tuple[Range, ...]:
    """The private writable mappings of this process; none where /proc cannot tell them."""
    try:
        with open("/proc/self/maps") as maps:
            return writable(maps.read())
    except OSError:
        return ()


def writable(maps: str) -> tuple[Range, ...]:
    """The private writable mappings of a /proc/PID/maps text: what a fork shares copy-on-write."""
    found = []
    for line in maps.splitlines():
        fields = line.split()
        if fields[1][1] == "w" and fields[1][3] == "p" and not fields[-1].startswith("[v"):
            start, _, end = fields[0].partition("-")
            found.append((int(start, 16), int(end, 16)))
    return tuple(found)


@frozen
class Learning:
    """What a spare knows, at its fork, of the pages calls write, and where it looks for more.

    `known` are the pages calls were seen to write: the spare copies them.
    `unknown` are the rest of the server's writable pages, where the call's
    process looks, after its answer, for those it wrote; empty once the
    server has stopped learning.
    """

    known: tuple[Range, ...]
    unknown: tuple[Range, ...]

    def own(self, libc: ctypes.CDLL, pending: select.poll) -> None:
        """Copy the known pages now, a step at a time, until a call is pending.

        A step the kernel refuses (every one before Linux 5.14; any may be
        interrupted) is passed over: the call faults those pages in.
        """
        for start, end in self.known:
            for step in range(start, end, STEP):
                if pending.poll(0):
                    return
                libc.madvise(step, min(STEP, end - step), MADV_POPULATE_WRITE)

    def written(self, pagemap: int) -> tuple[Range, ...]:
        """The unknown pages this process now holds alone: those it wrote since its fork.

        Read a byte per page, the one of its pagemap entry that holds both
        bits, and the runs of pages that have both, without a loop in Python
        over thousands of pages.
        """
        found: list[Range] = []
        for start, end in self.unknown:
            entries = os.pread(pagemap, (end - start) // PAGE * ENTRY, start // PAGE * ENTRY)
            held = entries[FLAGS_BYTE::ENTRY].translate(HELD)
            found += (
                (start + run.start() * PAGE, start + run.end() * PAGE)
                for run in RUNS.finditer(held)
            )
        return tuple(found)
