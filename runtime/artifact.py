"""The plugin artifact the agent installs on nodes: one file, the host's own python3.

A CNI plugin runs in the host's mount namespace, outside the agent's
container, where no netc is installed.  The artifact carries what the plugin
needs:

    #!/bin/sh ...      finds the host's python3 (or answers a CNI error) and
                       has it run the launcher, read from this very file
                       through a descriptor (the file may be replaced during
                       the call)
    launcher           runtime/install.py's: VERSION answered at once, the
                       call handed to the warm server when one answers, else
                       netc's plugin imported from the archive
    <zip>              netc's packages, standard library only on the plugin's
                       path

The launcher is plain text after the shell's `exit`, not the archive's
`__main__.py`: running a zip costs Python its zipimport set-up and reading
the directory, which a warm call and a VERSION never need.

The archive is built from the same modules as the server it hands calls to,
so the two agree on `install.identity()`.  Each module also travels
compiled, for the interpreter that builds the archive (the image's): a zip
cannot take the caches Python would write, and compiling the plugin's
modules on every call costs more than the call.  A host python of another
version finds the caches foreign and compiles the sources instead -- slower
when cold, the same when warm.
"""

from __future__ import annotations

import importlib.util
import io
import marshal
import zipfile

from compiler.errors import Code
from runtime.install import OLDEST_PYTHON, launcher_code, package_files

DEFAULT_SOCKET = "/run/netc/cni.sock"
UNCHECKED_HASH = 0b01
"""A .pyc's flags: hash-based (bit 0), the source not checked (bit 1 clear)."""
INTERPRETERS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
ARCHIVE = "/proc/self/fd/9"
"""This file, as the shell opened it: what the launcher and Python's imports read."""
SHELL = """#!/bin/sh
# netc-cni: netc's CNI plugin.  These lines find the node's python3 and have it run the
# launcher that follows them; the zip archive after it is netc (see runtime/artifact.py).
# Python reads this file again for every module it imports, so it reads it through a
# descriptor: an upgrade renaming a new one over it mid-call is not seen by this call.
exec 9<"$0" || exit 1
for python in {interpreters}; do
    [ -x "$python" ] && exec "$python" -IS -c \\
        'import os; exec(os.pread(9, {length:8d}, {offset:8d}))' "$@"
done
printf '%s\\n' '{error}'
exit 1
"""
MISSING = (
    '{{"cniVersion": "1.0.0", "code": {code}, "msg": "netc-cni needs python3 '
    '({oldest} or later) on the node: none in {where}"}}'
)


def plugin_artifact(
    warm_socket: str | None = DEFAULT_SOCKET, interpreters: tuple[str, ...] = INTERPRETERS
) -> bytes:
    """The artifact's bytes: the shell lines, the launcher, then the zip archive of netc.

    `interpreters` are tried in order (the usual places of a node's python3).
    """
    error = MISSING.format(
        code=int(Code.HOST_UNSUITABLE),
        oldest=".".join(map(str, OLDEST_PYTHON)),
        where=", ".join(interpreters),
    )
    launcher = launcher_code(warm_socket, root=ARCHIVE).encode()
    shell = {"interpreters": " ".join(interpreters), "error": error, "length": len(launcher)}
    offset = len(SHELL.format(**shell, offset=0).encode())  # the same length for any offset
    buffer = io.BytesIO()
    buffer.write(SHELL.format(**shell, offset=offset).encode() + launcher)
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in package_files():
            archive.writestr(_entry(name), content)
            archive.writestr(_entry(name.removesuffix(".py") + ".pyc"), _compiled(name, content))
    return buffer.getvalue()


def _compiled(name: str, source: bytes) -> bytes:
    """The module's byte code as an unchecked hash-based cache (PEP 552: no timestamp).

    Marshalled in format 2, which has no back-references: format 3 and later
    mark objects by their reference counts, so the bytes would depend on what
    the building process happened to hold (the agent's and a test's differ).
    """
    code = compile(source, name, "exec", dont_inherit=True)
    return (
        importlib.util.MAGIC_NUMBER
        + UNCHECKED_HASH.to_bytes(4, "little")
        + importlib.util.source_hash(source)
        + marshal.dumps(code, 2)
    )


def _entry(name: str) -> zipfile.ZipInfo:
    """A member with a fixed date, so the same code gives the same artifact, byte for byte."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16  # stored, not deflated: nothing to inflate per call
    return info
