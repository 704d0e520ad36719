"""The pages a warm server's calls write: ranges, reports, and what the kernel says was written."""

from __future__ import annotations

import ctypes
import mmap
import os
import socket

import pytest

from runtime.cni import pages

P = pages.PAGE


def test_ranges_merge_when_they_touch_or_overlap():
    assert pages.merged([(5 * P, 6 * P), (P, 2 * P), (2 * P, 3 * P), (P, 2 * P)]) == (
        (P, 3 * P),
        (5 * P, 6 * P),
    )


def test_what_is_known_is_cut_out_of_the_rest_in_one_sweep():
    ranges = ((0, 10 * P), (20 * P, 30 * P), (40 * P, 41 * P))
    known = ((0, P), (4 * P, 5 * P), (9 * P, 22 * P), (29 * P, 45 * P))
    assert list(pages.without(ranges, known)) == [(P, 4 * P), (5 * P, 9 * P), (22 * P, 29 * P)]
    assert list(pages.without(ranges, ())) == list(ranges)


def test_a_report_comes_back_as_sent():
    ranges = ((P, 3 * P), (8 * P, 9 * P))
    assert pages.decode(pages.encode(ranges)) == ranges


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x02\x03",  # not whole ranges
        pages.encode(((P + 1, 2 * P),)),  # not page-aligned
        pages.encode(((2 * P, P),)),  # empty, backwards
        pages.encode(((P, 2 * P),)) * (pages.MAX_RANGES + 1),
    ],
    ids=["torn", "unaligned", "backwards", "too many"],
)
def test_a_report_that_is_not_one_teaches_nothing(data):
    assert pages.decode(data) == ()


def _written_after_fork(buffer: mmap.mmap, touch: list[int]) -> tuple[pages.Range, ...]:
    """What a forked child, having written a byte into each page of `touch`, finds it wrote."""
    start = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    learning = pages.Learning(known=(), unknown=((start, start + len(buffer)),))
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            for page in touch:
                buffer[page * P] = 1
            pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
            os.write(writing, pages.encode(learning.written(pagemap)))
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as report:
        data = report.read()
    os.waitpid(child, 0)
    return tuple((s - start, e - start) for s, e in pages.decode(data))


def test_a_forked_process_finds_the_pages_it_wrote_and_no_others():
    """The kernel's own account (pagemap's "exclusively mapped"): pages shared with the parent
    are not the child's until it writes them."""
    buffer = mmap.mmap(-1, 16 * P, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer.write(b"x" * len(buffer))  # every page in memory, shared after the fork
    assert _written_after_fork(buffer, [2, 3, 9]) == ((2 * P, 4 * P), (9 * P, 10 * P))
    assert _written_after_fork(buffer, []) == ()


def test_without_a_readable_proc_spares_copy_nothing_and_calls_teach_nothing(monkeypatch, tmp_path):
    """A /proc the server may not read (an LSM, none mounted) costs the learning, not calls."""
    from runtime.cni import server

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "refused", str(path))

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        listener.bind(str(tmp_path / "s"))
        spare = server.Spare(listener, b"netc", 1.0, home=-1)
        monkeypatch.setattr("builtins.open", refused)
        monkeypatch.setattr(os, "open", refused)
        assert pages.writable_now() == ()
        assert spare.pages.unknown, "learnt before /proc was refused"
        assert spare.own_pages() is None
