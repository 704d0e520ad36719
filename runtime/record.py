"""Attachment records: what an ADD was asked for and what it reserved.

The record is the first thing an ADD writes and the last thing a DEL
removes.  A DEL that comes without runtimeConfig (or a GC) reads the port
mappings and bandwidth from it, and the addresses, so it removes exactly
what the ADD created without walking every reservation file.  Records live
under the network's state directory, /run/netc by default: tmpfs, cleared at
boot like the kernel state they describe.
"""

from __future__ import annotations

import json
import os

from compiler import ir_codec
from compiler.datatypes import field, mutable
from compiler.planner.context import PodContext
from runtime.files import private_directory, read_text, remove, write_atomically

FORMAT = 1


@mutable
class Record:
    """The context of an attachment and the values its ADD bound."""

    path: str
    context: PodContext
    bindings: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        """Write the record atomically."""
        private_directory(os.path.dirname(self.path))
        document = {"format": FORMAT, "context": ir_codec.encode(self.context),
                    "bindings": self.bindings}
        write_atomically(self.path, json.dumps(document, sort_keys=True).encode(),
                         durable=False)

    def delete(self) -> bool:
        """Remove the record; False when it was already gone."""
        return remove(self.path)


def load(path: str) -> Record | None:
    """The record at `path`, or None when there is none (or it is unreadable)."""
    text = read_text(path)
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
