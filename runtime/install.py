"""`netc install-plugin`: put a `netc-cni` launcher where container runtimes look.

Runtimes exec plugins with a reduced environment -- containerd with its own
PATH, podman's cleanup with conmon's -- so `#!/usr/bin/env python3` could
find another interpreter on DEL than on ADD (or a slow pyenv shim).  The
launcher names its interpreter by absolute path, runs it isolated (-I: no
PYTHON* variables, no user site) and without `site` (-S: ~30 ms less
start-up), and puts netc's own packages on sys.path itself -- after the
standard library, so nothing beside netc in that directory can shadow it.  The plugin needs
nothing but the standard library, so any Python 3.11+ will do; an optimised
build (Debian's /usr/bin/python3) starts faster than a source-built one.

With a warm socket the launcher first offers the call to `netc serve-cni`
(runtime/cni/server.py) and runs the plugin itself only when no server of
this netc answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import runtime

LAUNCHER_HANDOVER_TIMEOUT = 2.0
"""Seconds a warm launcher waits on each step of the hand-over before running the call itself."""
COLD = '''#!{python} -IS
# netc-cni launcher written by `netc install-plugin`; rerun it after moving netc.
import sys
sys.path.append({root!r})
from runtime.cni.plugin import entry
entry()
'''

WARM = '''#!{python} -IS
# netc-cni launcher written by `netc install-plugin --warm-socket`: the call goes to
# `netc serve-cni` when it runs, else the plugin runs here.  Standard library only,
# and Python 3.9 or later: see runtime/cni/server.py for the protocol.
import os
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET, socket
from struct import pack

ROOT = {root!r}
SOCKET = {socket!r}
IDENTITY = {identity!r}
HEADER = {magic!r} + pack(">B", {protocol})
READY, STARTED, NOT_ME, GO = (bytes([{ready}]), bytes([{started}]), bytes([{not_me}]),
                              bytes([{go}]))
HANDOVER_TIMEOUT = {handover_timeout}
STATUS_TIMEOUT = {status_timeout}


def cold():
    sys.path.append(ROOT)
    from runtime.cni.plugin import entry
    entry()


def offer(server):
    # True once GO and our descriptors are sent; until then we may give up and
    # run the call here (the server has run nothing, and holds none of our streams).
    environment = b"\\0".join(key + b"=" + value for key, value in os.environb.items())
    payload = IDENTITY + b"\\0" + environment
    server.settimeout(HANDOVER_TIMEOUT)
    server.connect(SOCKET)
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
sys.exit(status)
'''


def package_root() -> str:
    """The directory holding netc's packages (the checkout, or site-packages)."""
    return str(Path(runtime.__file__).resolve().parent.parent)


def identity() -> str:
    """What a launcher and a server must agree on to hand calls over: the same netc."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("netc")
    except PackageNotFoundError:
        release = "unreleased"
    return f"netc {release} {package_root()}"


def launcher_text(python: str | None = None, warm_socket: str | None = None) -> str:
    """The launcher for an interpreter (default: this one), cold or warm."""
    fields = {"python": python or sys.executable, "root": package_root()}
    if warm_socket is None:
        return COLD.format(**fields)
    return WARM.format(**fields, **_protocol(), socket=warm_socket,
                       identity=os.fsencode(identity()))


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


def install(bin_dir: Path, python: str | None = None, warm_socket: str | None = None) -> Path:
    """Write `bin_dir/netc-cni` atomically and make it executable."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "netc-cni"
    temporary = bin_dir / f".netc-cni.{os.getpid()}.tmp"
    temporary.write_text(launcher_text(python, warm_socket))
    temporary.chmod(0o755)
    os.replace(temporary, target)
    return target
