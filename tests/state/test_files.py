"""Crash-safe files and locks, without a kernel: what a writer leaves behind, and when."""

import errno
import fcntl
import os
import threading

import pytest

from runtime import files
from runtime.files import TEMPORARY_PREFIX


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state"
    target.write_bytes(b"old")
    for durable in (True, False):
        files.write_atomically(str(target), b"new", durable=durable)
        assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["state"]


def test_a_failed_write_leaves_neither_a_temporary_nor_a_changed_file(tmp_path, monkeypatch):
    target = tmp_path / "state"
    target.write_bytes(b"old")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_all", full)
    with pytest.raises(OSError, match="No space"):
        files.write_atomically(str(target), b"new", durable=True)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state"]


def test_create_exclusively_takes_a_free_name_once_and_never_an_empty_file(tmp_path):
    path = str(tmp_path / "10.0.0.2")
    assert files.create_exclusively(path, b"owner-a")
    assert not files.create_exclusively(path, b"owner-b")
    assert files.read_text(path) == "owner-a"
    assert os.listdir(tmp_path) == ["10.0.0.2"]


def test_remove_and_read_tolerate_absence(tmp_path):
    assert files.read_text(str(tmp_path / "none")) is None
    assert files.remove(str(tmp_path / "none")) is False


def test_sweep_removes_only_temporaries(tmp_path):
    (tmp_path / f"{TEMPORARY_PREFIX}123-abcd").write_bytes(b"half")
    (tmp_path / "10.0.0.2").write_bytes(b"owner")
    files.sweep_temporaries(str(tmp_path))
    assert os.listdir(tmp_path) == ["10.0.0.2"]
    files.sweep_temporaries(str(tmp_path / "missing"))


def test_locked_holds_an_exclusive_flock_for_its_body_only(tmp_path):
    path = str(tmp_path / "net" / "lock")
    with files.locked(path):
        other = os.open(path, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
    other = os.open(path, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(other)


def test_locked_says_how_long_it_waited_for_the_lock(tmp_path):
    path = str(tmp_path / "net" / "lock")
    with files.locked(path) as waited:
        assert waited == 0.0, "a lock free at the first try was not waited for"
    holder = os.open(path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    releaser = threading.Timer(0.2, os.close, [holder])
    releaser.start()
    try:
        with files.locked(path) as waited:
            assert waited >= 0.19
    finally:
        releaser.join()
