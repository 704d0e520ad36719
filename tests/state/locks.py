"""Seeing a `runtime.files.locked` call of this process wait, without a clock."""

from __future__ import annotations

import threading

import pytest

from runtime import files


def waiting_on(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set once a `locked` call of this process has found its lock taken."""
    refused = threading.Event()
    try_flock = files._try_flock

    def noting(fd: int) -> bool:
        taken = try_flock(fd)
        if not taken:
            refused.set()
        return taken

    monkeypatch.setattr(files, "_try_flock", noting)
    return refused
