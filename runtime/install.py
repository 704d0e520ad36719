"""`netc install-plugin`: put a `netc-cni` launcher where container runtimes look.

Runtimes exec plugins with a reduced environment -- containerd with its own
PATH, podman's cleanup with conmon's -- so `#!/usr/bin/env python3` could
find another interpreter on DEL than on ADD (or a slow pyenv shim).  The
launcher names its interpreter by absolute path, runs it isolated (-I: no
PYTHON* variables, no user site) and without `site` (-S: ~30 ms less
start-up), and puts netc's own packages on sys.path itself -- after the
standard library, so nothing beside netc in that directory can shadow it.  The plugin needs
nothing but the standard library, so any Python 3.10+ will do; an optimised
build (Debian's /usr/bin/python3) starts faster than a source-built one.

With a warm socket the launcher first offers the call to `netc serve-cni`
(runtime/cni/server.py) and runs the plugin itself only when no server of
this netc answers.  Either way it answers VERSION itself, importing
nothing: runtimes ask every plugin for it whenever they load a network.
The same code is the entry point of the plugin artifact (runtime/artifact.py).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import runtime
from compiler.errors import Code
from runtime.files import write_atomically

LAUNCHER_HANDOVER_TIMEOUT = 2.0
"""Seconds a warm launcher waits on each step of the hand-over before running the call itself."""
OLDEST_PYTHON = (3, 10)
"""The oldest interpreter the plugin itself runs on (the warm hand-over runs on 3.9)."""

SHEBANG = '''#!{python} -IS
# netc-cni launcher written by `netc install-plugin`; rerun it after moving netc.
'''

LAUNCHER = '''# Standard library only, and Python 3.9 or later: VERSION is answered here without
# importing anything; the call goes to `netc serve-cni` when one runs (see
# runtime/cni/server.py for the protocol), else the plugin runs here (cold).
import os
import sys

ROOT = {root!r}
SOCKET = {socket!r}
VERSIONS = {versions!r}
DEFAULT_VERSION = {version!r}


def answer_version():
    # What the plugin answers, from a glance at stdin's "cniVersion" (no json import).
    data = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    stated = DEFAULT_VERSION
    key = data.find(b'"cniVersion"')
    if key >= 0:
        start = data.find(b'"', data.find(b":", key) + 1) + 1
        end = data.find(b'"', start)
        found = data[start:end].decode("ascii", "replace") if 0 < start <= end else ""
        if found and found.replace(".", "").isdigit():
            stated = found
    listed = ", ".join('"' + v + '"' for v in VERSIONS)
    sys.stdout.write('{{"cniVersion": "' + stated + '", "supportedVersions": [' + listed + ']}}\\n')


def leave(status):
    # Flush and exit without the interpreter's teardown (~1 ms here, ~5 ms once the
    # plugin is loaded): everything written is flushed, no file is left open for writing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cold():
    if sys.version_info < {oldest!r}:
        found = ".".join(map(str, sys.version_info[:3]))
        sys.stdout.write('{{"cniVersion": "' + DEFAULT_VERSION + '", "code": {unsuitable}, '
                         '"msg": "netc-cni needs Python {oldest_text} or later on the node, '
                         'found ' + found + ' (' + sys.executable + ')"}}\\n')
        leave(1)
    if ROOT is not None:
        sys.path.append(ROOT)
    from runtime.cni.plugin import entry
    entry()


if os.environb.get(b"CNI_COMMAND") == b"VERSION":
    answer_version()
    leave(0)
if SOCKET is None:
    cold()
'''

WARM = '''from _socket import AF_UNIX, SCM_RIGHTS, SO_PEERCRED, SOCK_STREAM, SOL_SOCKET, socket
from _struct import pack, unpack

IDENTITY = {identity!r}
HEADER = {magic!r} + pack(">B", {protocol})
READY, STARTED, NOT_ME, GO = (bytes([{ready}]), bytes([{started}]), bytes([{not_me}]),
                              bytes([{go}]))
HANDOVER_TIMEOUT = {handover_timeout}
STATUS_TIMEOUT = {status_timeout}


def offer(server):
    # True once GO and our descriptors are sent; until then we may give up and
    # run the call here (the server has run nothing, and holds none of our streams).
    environment = b"\\0".join(key + b"=" + value for key, value in os.environb.items())
    payload = IDENTITY + b"\\0" + environment
    server.settimeout(HANDOVER_TIMEOUT)
    server.connect(SOCKET)
    if unpack("3i", server.getsockopt(SOL_SOCKET, SO_PEERCRED, 12))[1] != 0:
        return False  # not root: whoever it is gets neither the call nor our stdout
    server.sendall(HEADER + pack(">I", len(payload)) + payload)
    if server.recv(1) != READY:  # NOT_ME: another netc, or a hand-over it refused
        return False
    namespaces = [os.open("/proc/self/ns/" + kind, os.O_RDONLY) for kind in ("net", "mnt")]
    server.sendmsg([GO], [(SOL_SOCKET, SCM_RIGHTS, pack("5i", 0, 1, 2, *namespaces))])
    return True


def receive(server):
    try:
        return server.recv(1)
    except OSError:
        return b""


def outcome(server):
    # The call's exit status; None when the server ran nothing after all.
    server.settimeout(STATUS_TIMEOUT)
    answer = receive(server)
    if answer in (b"", NOT_ME):  # it ended or refused before starting the plugin
        return None
    status = receive(server) if answer == STARTED else b""
    if status:
        return status[0]
    import json
    message = "the warm server's process for this call ended without an exit status"
    print(json.dumps(dict(cniVersion={version!r}, code=11, msg=message,
                          details="try again later")))
    return 1


server = socket(AF_UNIX, SOCK_STREAM)
try:
    taken = offer(server)
except OSError:
    taken = False
status = outcome(server) if taken else None
if status is None:
    server.close()
    cold()
leave(status)
'''


def package_root() -> str:
    """The directory holding netc's packages (the checkout, or site-packages)."""
    return str(Path(runtime.__file__).resolve().parent.parent)


PACKAGES = ("compiler", "runtime")
"""What the plugin is made of (the grammar is the compiler's, the plugin never parses)."""


def package_files() -> list[tuple[str, bytes]]:
    """(path inside the packages' root, content) of every module of netc's packages."""
    root = Path(package_root())
    return [(path.relative_to(root).as_posix(), path.read_bytes())
            for package in PACKAGES for path in sorted((root / package).rglob("*.py"))]


def netc_version() -> str:
    """The release of netc, from its installed metadata ("unreleased" in a bare checkout).

    It reads the disk, so it lives here and not in the pure compiler.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("netc")
    except PackageNotFoundError:
        return "unreleased"


def identity() -> str:
    """What a launcher and a server must agree on to hand calls over: the same code.

    A digest of netc's modules, so a launcher written by one install, or the
    artifact built from the same code, and the server agree wherever each
    lives; another netc's server is never handed a call.
    """
    digest = hashlib.sha256()
    for name, content in package_files():
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return f"netc {netc_version()} {digest.hexdigest()[:16]}"


def launcher_code(warm_socket: str | None, root: str | None) -> str:
    """The launcher's Python, without its first line.

    VERSION is answered there; a call is handed over when `warm_socket`
    answers, else the plugin runs from `root` (None: it is on sys.path
    already, as in the artifact).
    """
    from compiler.versions import CNI_VERSIONS, DEFAULT_CNI_VERSION

    fields = {"root": root, "socket": warm_socket, "versions": list(CNI_VERSIONS),
              "version": DEFAULT_CNI_VERSION, "oldest": OLDEST_PYTHON,
              "oldest_text": ".".join(map(str, OLDEST_PYTHON)),
              "unsuitable": int(Code.HOST_UNSUITABLE)}
    code = LAUNCHER.format(**fields)
    if warm_socket is not None:
        code += WARM.format(**_protocol(), identity=os.fsencode(identity()))
    return code


def launcher_text(python: str | None = None, warm_socket: str | None = None) -> str:
    """The launcher script for an interpreter (default: this one), cold or warm."""
    return (SHEBANG.format(python=python or sys.executable)
            + launcher_code(warm_socket, package_root()))


def _protocol() -> dict[str, object]:
    """The launcher's side of the warm server's protocol (runtime/cni/server.py)."""
    from compiler.versions import DEFAULT_CNI_VERSION
    from runtime.cni import server
    from runtime.deadline import CALL_DEADLINE, GRACE

    return {"magic": server.MAGIC, "protocol": server.PROTOCOL, "ready": server.READY,
            "started": server.STARTED, "not_me": server.NOT_ME, "go": server.GO,
            "version": DEFAULT_CNI_VERSION,
            # how long a stuck server may delay a call before the launcher runs it itself
            # (safe at any moment before GO: until then the server has run nothing)
            "handover_timeout": LAUNCHER_HANDOVER_TIMEOUT,
            # a call ends by its deadline (runtime/deadline.py), or its process does
            "status_timeout": CALL_DEADLINE + GRACE + 15}


def install_plugin(bin_dir: Path, python: str | None = None,
                   warm_socket: str | None = None) -> list[str]:
    """`netc install-plugin`: netc-cni into `bin_dir`; what was installed, one line each.

    The compiled shim (runtime/shim.py) as `netc-cni`, which answers VERSION
    and hands calls to `warm_socket`, and the Python launcher, cold only, as
    `.netc-cni-cold` beside it for the shim to run while no server answers
    (where the node still has the launcher's interpreter; else CNI error 11).
    Without a C compiler to build the shim, the Python launcher alone, as
    before: it needs Python on the node for every call.
    """
    from runtime import shim

    interpreter = python or sys.executable
    try:
        binary = shim.compiled()
    except shim.ShimUnavailable as error:
        target = install(bin_dir, python, warm_socket)
        return [f"{error}; installed the Python launcher {target} instead (every call needs "
                f"{interpreter})"]
    directory = bin_dir.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    cold, target = directory / shim.COLD, directory / "netc-cni"
    write_atomically(str(cold), launcher_text(interpreter, None).encode(), durable=True,
                     mode=0o755)
    write_atomically(str(target), shim.for_bin_dir(binary, str(directory), warm_socket,
                                                   [interpreter]), durable=True, mode=0o755)
    return [f"installed {cold} (the cold path: {interpreter})",
            f"installed {target} (compiled; warm server: {warm_socket or 'none'})"]


def install(bin_dir: Path, python: str | None = None, warm_socket: str | None = None) -> Path:
    """Write the Python launcher as `bin_dir/netc-cni` atomically and make it executable."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "netc-cni"
    write_atomically(str(target), launcher_text(python, warm_socket).encode(), durable=True,
                     mode=0o755)
    return target
