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
                       netc's plugin imported from the modules that follow
    modules            each of netc's modules: its source, then its byte code
    table              (magic number, {module: (file, is a package, where its
                       source and its byte code are)}), marshalled
    trailer            where the table starts and its length, 8 bytes each

The launcher is plain text after the shell's `exit`, and reads only what a
call needs: VERSION and a warm call read no module.  A cold call's launcher
reads the table and imports netc's modules from it (`launcher.Archive`).
This file was a zip before: Python's zip import, which opens the file again
and reads headers for each module, made a cold call's imports slower
(docs/benchmarks.md).

The artifact is built from the same modules as the server it hands calls
to, so the two agree on `install.identity()`.  Each module travels
compiled, for the interpreter that builds the artifact (the image's): the
file cannot take the caches Python would write, and compiling the plugin's
modules on every call costs more than the call.  A host python of another
version finds the magic number foreign and compiles the sources instead --
slower when cold, the same when warm.
"""

from __future__ import annotations

import importlib.util
import marshal

from compiler.errors import Code
from runtime.install import OLDEST_PYTHON, launcher_code, package_files
from runtime.launcher import TRAILER

DEFAULT_SOCKET = "/run/netc/cni.sock"
INTERPRETERS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
ARCHIVE = 9
"""This file's descriptor, as the shell opened it: what the launcher reads netc's modules from."""
SHELL = """#!/bin/sh
# netc-cni: netc's CNI plugin.  These lines find the node's python3 and have it run the
# launcher that follows them; netc's modules come after it (see runtime/artifact.py).
# The launcher reads them from this file through a descriptor: an upgrade renaming a
# new one over it mid-call is not seen by this call.
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
    """The artifact's bytes: the shell lines, the launcher, then netc's modules.

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
    start = SHELL.format(**shell, offset=offset).encode() + launcher
    return start + _modules(len(start))


def _modules(at: int) -> bytes:
    """Each module's source and byte code, their table and the trailer, for offset `at`."""
    content, table = bytearray(), {}
    for file, source in package_files():
        name = file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        code = _compiled(file, source)
        code_at = at + len(content) + len(source)
        package = file.endswith("/__init__.py")
        table[name] = (file, package, code_at - len(source), len(source), code_at, len(code))
        content += source + code
    index = marshal.dumps((importlib.util.MAGIC_NUMBER, table), 2)
    size = TRAILER // 2
    trailer = (at + len(content)).to_bytes(size, "big") + len(index).to_bytes(size, "big")
    return bytes(content + index + trailer)


def _compiled(file: str, source: bytes) -> bytes:
    """The module's byte code, marshalled in format 2, which has no back-references.

    Format 3 and later mark objects by their reference counts, so the bytes
    would depend on what the building process happened to hold (the agent's
    and a test's differ).
    """
    return marshal.dumps(compile(source, file, "exec", dont_inherit=True), 2)
