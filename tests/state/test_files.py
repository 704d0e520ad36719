"""Crash-safe files and locks, without a kernel: what a writer leaves behind, and when."""

import errno
import fcntl
import os
import re
import threading

import pytest

from runtime import files
from runtime.files import TEMPORARY_PREFIX
from tests.state.locks import waiting_on


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


def test_overwrite_keeps_the_file_and_replaces_its_whole_content_privately(tmp_path):
    hint = tmp_path / "last_reserved_ip.0"
    hint.write_text("10.0.0.200")
    hint.chmod(0o644)
    inode = hint.stat().st_ino
    files.overwrite(str(hint), b"10.0.0.3")
    assert hint.read_text() == "10.0.0.3"
    assert (hint.stat().st_ino, hint.stat().st_mode & 0o777) == (inode, 0o600)
    assert os.listdir(tmp_path) == ["last_reserved_ip.0"]


def test_create_exclusively_takes_a_free_name_once_and_never_an_empty_file(tmp_path):
    path = str(tmp_path / "10.0.0.2")
    assert files.create_exclusively(path, b"owner-a")
    assert not files.create_exclusively(path, b"owner-b")
    assert files.read_text(path) == "owner-a"
    assert os.listdir(tmp_path) == ["10.0.0.2"]


def test_remove_and_read_tolerate_absence(tmp_path):
    assert files.read_text(str(tmp_path / "none")) is None
    assert files.remove(str(tmp_path / "none")) is False


def test_a_claim_linked_to_a_killed_writers_temporary_is_never_rewritten(tmp_path):
    """create_exclusively killed between its link and its unlink left both names on one file."""
    path = str(tmp_path / "tcp:8080")
    assert files.create_exclusively(path, b"owner-a")
    os.link(path, files.locked_temporary(path))
    assert not files.create_exclusively(path, b"owner-b")
    assert files.read_text(path) == "owner-a"
    assert os.listdir(tmp_path) == ["tcp:8080"]


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


def _holding(path: str, refused: threading.Event, body) -> threading.Thread:
    """A thread that holds `locked(path)` for `body` (once the test releases the file)."""

    def hold() -> None:
        with files.locked(path) as waited:
            body(waited)

    thread = threading.Thread(target=hold)
    thread.start()
    assert refused.wait(30), "the thread never found the lock taken"
    return thread


def test_a_wait_for_a_lock_is_logged_as_what_it_guards(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "net" / "lock")
    with files.locked(path, logged_as="network n"):
        pass
    assert capsys.readouterr().err == "", "a lock free at the first try is no wait"
    refused = waiting_on(monkeypatch)
    holder = os.open(path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)

    def waiting() -> None:
        with files.locked(path, logged_as="network n"):
            pass

    thread = threading.Thread(target=waiting)
    thread.start()
    assert refused.wait(30)
    os.close(holder)
    thread.join()
    assert re.fullmatch(
        r"netc-cni: waited [\d.]+ ms for the lock of network n\n", capsys.readouterr().err
    )


def test_a_holder_may_remove_the_lock_file_and_a_waiter_locks_the_path_again(tmp_path, monkeypatch):
    """Without the check that the path still names the locked file, the waiter would hold
    the removed file while the next caller created and locked another: two holders."""
    path = str(tmp_path / "attachment.lock")
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    seen: dict[str, bool] = {}
    inside, leave = threading.Event(), threading.Event()

    def body(waited: float) -> None:
        seen["path exists"] = os.path.exists(path)
        if seen["path exists"]:
            other = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen["held"] = False
            except BlockingIOError:
                seen["held"] = True
            finally:
                os.close(other)
        inside.set()
        leave.wait(30)

    thread = _holding(path, waiting_on(monkeypatch), body)
    os.unlink(path)  # as a DEL removes its attachment's lock, holding it
    os.close(holder)
    assert inside.wait(30)
    leave.set()
    thread.join()
    assert seen == {"path exists": True, "held": True}


def test_a_temporary_is_named_after_its_file_and_fixed_for_a_locked_one(tmp_path, monkeypatch):
    target = tmp_path / "ab12.json"
    named = []

    def interrupted(temporary: str, path: str) -> None:
        named.append(os.path.basename(temporary))
        raise OSError(errno.EIO, "interrupted")

    monkeypatch.setattr(os, "replace", interrupted)
    for locked in (False, True):
        with pytest.raises(OSError):
            files.write_atomically(str(target), b"{}", durable=False, locked=locked)
    monkeypatch.undo()
    assert re.fullmatch(rf"{TEMPORARY_PREFIX}ab12\.json-{os.getpid()}-[0-9a-f]{{8}}", named[0])
    assert named[1] == os.path.basename(files.locked_temporary(str(target)))
    assert os.listdir(tmp_path) == []


def test_a_locked_write_replaces_what_a_killed_writer_left_in_its_temporary(tmp_path):
    target = tmp_path / "ab12.json"
    left = tmp_path / os.path.basename(files.locked_temporary(str(target)))
    left.write_bytes(b"half")
    left.chmod(0o444)
    files.write_atomically(str(target), b"{}", durable=False, locked=True)
    assert target.read_bytes() == b"{}"
    assert os.listdir(tmp_path) == ["ab12.json"]
