"""A directory netc writes conflists into, owning exactly what it wrote there.

Runtimes load every conflist of /etc/cni/net.d and take the lexically first:
a file netc wrote once and no longer builds (a renamed network, a new
`priority`) would keep winning (kubespray#2122, calico#1388).  So netc keeps a
manifest of the files it wrote, with the digest of what it wrote:

    DIR/.netc-owned    {"format": 1, "files": {"10-pods.conflist":
                                                {"network": "pods", "digest": "sha256:..."}}}

(no `.conf`, `.conflist` or `.json` ending, so no runtime loads it).  A file in
the manifest that netc no longer wants is removed -- unless someone edited it
since, then it is left and reported (`netc build` then writes nothing and fails:
left beside the new files, it would still be loaded).  Files netc never wrote are never touched.
Building some networks only (`--network`) leaves the files of the others
alone.  Every write goes through a temporary file, fsync and rename.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Collection, Mapping
from enum import StrEnum

from compiler.datatypes import frozen
from compiler.digests import sha256
from compiler.errors import Code, NetcError
from runtime.files import read_text, remove, write_atomically

MANIFEST = ".netc-owned"
FORMAT = 1


class FileAction(StrEnum):
    """What becomes of one file."""

    WRITE = "write"
    UNCHANGED = "unchanged"
    REMOVE = "remove"
    EDITED = "edited"
    """Written by netc, no longer wanted, but changed by someone since: left alone."""


@frozen
class Output:
    """A file netc wants in the directory: the network it belongs to, and its text."""

    network: str
    text: str


@frozen
class FileChange:
    """One file of the directory and what happens to it; `current` is its text now."""

    action: FileAction
    name: str
    network: str
    current: str | None
    wanted: str | None

    @property
    def drift(self) -> bool:
        """Whether the directory differs from what netc builds, here."""
        return self.action in (FileAction.WRITE, FileAction.REMOVE, FileAction.EDITED)


@frozen
class DirectoryPlan:
    """The changes to a directory, and the manifest entries they do not concern."""

    changes: list[FileChange]
    others: dict[str, dict[str, str]]


class InTheWay(NetcError):
    """What stands where netc would write is not netc's: it is never read, replaced or removed."""

    code = Code.BAD_CONFIG


class _NotAFile(Exception):
    """A symbolic link (at the name, or a folder on the way), a directory, a device."""


class UnsafeName(NetcError):
    """An output name that is not a plain relative path: it could land outside the directory."""

    code = Code.BAD_CONFIG


def plain_name(name: str) -> bool:
    """Whether `name` stays in the directory: file names joined by `/` (`node-a/10-x.conflist`).

    No component is empty, `.` or `..`, and none holds NUL: a name made from
    data (a network's name) cannot climb out or start at `/`.
    """
    parts = name.split("/")
    return all(part not in ("", ".", "..") and "\0" not in part for part in parts)


def digest(text: str) -> str:
    """The digest the manifest records for a file's text."""
    return "sha256:" + sha256(text.encode()).hexdigest()


def plan_directory(
    directory: str, wanted: Mapping[str, Output], networks: Collection[str] | None = None
) -> DirectoryPlan:
    """What writing `wanted` (relative path -> output) into `directory` changes.

    Files netc wrote for `networks` (default: any) and no longer wants are
    removed; the manifest's other entries are kept as they are.
    """
    unsafe = sorted(name for name in wanted if not plain_name(name))
    if unsafe:
        raise UnsafeName(
            f"{unsafe[0]!r} is not a plain file name: netc writes nothing outside {directory}"
        )
    owned = _manifest(directory)
    mine = {
        name: entry
        for name, entry in owned.items()
        if networks is None or entry["network"] in networks
    }
    changes, in_the_way = [], []
    for name in sorted(set(wanted) | set(mine)):
        try:
            current = _current(directory, name)
        except _NotAFile as error:
            if name in wanted:
                in_the_way.append(f"{os.path.join(directory, name)}: {error}")
            else:  # netc wrote a file there; what is there now is not it
                changes.append(
                    FileChange(FileAction.EDITED, name, mine[name]["network"], None, None)
                )
            continue
        if name in wanted:
            if current not in (None, wanted[name].text) and name not in owned:
                in_the_way.append(f"{os.path.join(directory, name)}: netc did not write it")
                continue
            action = FileAction.UNCHANGED if current == wanted[name].text else FileAction.WRITE
            changes.append(
                FileChange(action, name, wanted[name].network, current, wanted[name].text)
            )
        elif current is not None:
            unedited = digest(current) == mine[name]["digest"]
            action = FileAction.REMOVE if unedited else FileAction.EDITED
            changes.append(FileChange(action, name, mine[name]["network"], current, None))
    if in_the_way:
        raise InTheWay(
            "nothing written: files netc does not own stand where it would write, "
            "and netc never touches them:\n  " + "\n  ".join(in_the_way),
            details="remove or move them, then run netc again",
        )
    others = {n: e for n, e in owned.items() if n not in mine and n not in wanted}
    return DirectoryPlan(changes, others)


def _current(directory: str, name: str) -> str | None:
    """The text of `directory/name` now; None when there is none.

    Nothing is read through a symbolic link -- at the name, or a folder on the
    way to it -- nor anything but a regular file (`_NotAFile`): a link could
    lead netc to print a secret (`--check` shows differences) or to write
    elsewhere.
    """
    folder = os.path.dirname(name)
    resolved = os.path.realpath(os.path.join(directory, folder))
    if folder and resolved != os.path.join(os.path.realpath(directory), folder):
        raise _NotAFile(f"{folder} is a symbolic link")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(os.path.join(directory, name), flags)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _NotAFile(
                "a symbolic link" if error.errno == errno.ELOOP else "a folder on the way is a file"
            ) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotAFile("not a regular file")
        return handle.read().decode("utf-8", errors="replace")


def carry_out(directory: str, plan: DirectoryPlan) -> None:
    """Write and remove as planned, then record what netc owns now."""
    for change in plan.changes:
        path = os.path.join(directory, change.name)
        if change.action == FileAction.WRITE and change.wanted is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_atomically(path, change.wanted.encode(), durable=True, mode=0o644)
        elif change.action == FileAction.REMOVE:
            remove(path)
    owned = dict(plan.others)
    owned |= {
        c.name: {"network": c.network, "digest": digest(c.wanted)}
        for c in plan.changes
        if c.wanted is not None
    }
    document = json.dumps({"format": FORMAT, "files": owned}, indent=2, sort_keys=True) + "\n"
    os.makedirs(directory, exist_ok=True)
    write_atomically(os.path.join(directory, MANIFEST), document.encode(), durable=True, mode=0o644)


def owned(directory: str) -> list[str]:
    """The files of `directory` netc wrote there and that are there still."""
    return [name for name in _manifest(directory) if os.path.exists(os.path.join(directory, name))]


def _manifest(directory: str) -> dict[str, dict[str, str]]:
    """The manifest's entries; an unreadable manifest owns nothing (nothing is removed)."""
    text = read_text(os.path.join(directory, MANIFEST))
    if text is None:
        return {}
    try:
        files = json.loads(text)["files"]
        return {
            str(name): {"network": str(entry["network"]), "digest": str(entry["digest"])}
            for name, entry in files.items()
            if plain_name(str(name))
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
