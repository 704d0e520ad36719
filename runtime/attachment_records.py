"""Attachment records: what an ADD was asked for and what it reserved.

The record is the first thing an ADD writes and the last thing a DEL
removes.  A DEL that comes without runtimeConfig (or a GC) reads the port
mappings and bandwidth from it, and the addresses, so it removes exactly
what the ADD created without walking every reservation file.  Records live
under the network's state directory, /run/netc by default: tmpfs, cleared at
boot like the kernel state they describe.

Beside each record is its attachment's lock (`<key>.lock`), held for the
whole of each ADD, DEL and CHECK of the attachment and by a GC detaching
it, so two calls on one attachment never interleave while calls on
different attachments run side by side.  It goes when the record goes.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

from compiler import ir_codec
from compiler.datatypes import field, mutable
from compiler.planner.context import PodContext
from runtime import files

FORMAT = 1


@mutable
class Record:
    """The context of an attachment and the values its ADD bound."""

    path: str
    context: PodContext
    bindings: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        """Write the record atomically."""
        files.private_directory(os.path.dirname(self.path))
        document = {
            "format": FORMAT,
            "context": ir_codec.encode(self.context),
            "bindings": self.bindings,
        }
        files.write_atomically(
            self.path, json.dumps(document, sort_keys=True).encode(), durable=False, locked=True
        )

    def delete(self) -> bool:
        """Remove the record; False when it was already gone."""
        return files.remove(self.path)


def load(path: str) -> Record | None:
    """The record at `path`, or None when there is none (or it is unreadable)."""
    text = files.read_text(path)
    if text is None:
        return None
    try:
        document = json.loads(text)
        context = ir_codec.decode_as(PodContext, document["context"])
        return Record(path, context, dict(document.get("bindings", {})))
    except (ValueError, KeyError, TypeError, ir_codec.FormatError):
        return None


def paths(directory: str) -> list[str]:
    """The record files of a network's state directory."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.endswith(".json"))


@contextlib.contextmanager
def attachment_locked(path: str) -> Iterator[None]:
    """Hold the lock of the attachment whose record is at `path`, for a whole call.

    The record is written only under this lock, through its fixed temporary:
    each save replaces what a killed call left there.  When the call ends
    with no record (a DEL, a failed ADD), that temporary goes, and the lock
    file too: it is removed by its holder, which a caller waiting on it
    notices (`runtime.files.locked`).
    """
    key = path.removesuffix(".json")
    lock = f"{key}.lock"
    with files.locked(lock, logged_as=f"attachment {os.path.basename(key)}", kind="attachment"):
        try:
            yield
        finally:
            if not os.path.exists(path):
                files.remove(files.locked_temporary(path))
                files.remove(lock)
