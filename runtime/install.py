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
from compiler.versions import netc_version

COLD = '''#!{python} -IS
# netc-cni launcher written by `netc install-plugin`; rerun it after moving netc.
import sys
sys.path.append({root!r})
from runtime.cni.plugin import entry
entry()
'''

WARM = '''#!{python} -IS
# netc-cni launcher written by `netc install-plugin --warm-socket`: the call goes to
# `netc serve-cni` when it runs, else the plugin runs here.
import os
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET, socket
from struct import pack


def cold():
    sys.path.insert(0, {root!r})
    from runtime.cni.plugin import entry
    entry()


try:
    server = socket(AF_UNIX, SOCK_STREAM)
    server.connect({socket!r})
except OSError:
    cold()
namespaces = [os.open(f"/proc/self/ns/{{kind}}", os.O_RDONLY) for kind in ("net", "mnt")]
fds = [0, 1, 2, *namespaces]
environment = b"\\0".join(k.encode() + b"=" + v.encode() for k, v in os.environ.items())
server.sendmsg([{identity!r}.encode() + b"\\0\\0" + environment],
               [(SOL_SOCKET, SCM_RIGHTS, pack("5i", *fds))])
status = server.recv(1)
if status == bytes([{not_me}]):
    cold()
sys.exit(status[0] if status else 1)
'''


def package_root() -> str:
    """The directory holding netc's packages (the checkout, or site-packages)."""
    return str(Path(runtime.__file__).resolve().parent.parent)


def identity() -> str:
    """What a launcher and a server must agree on to hand calls over: the same netc."""
    return f"netc {netc_version()} {package_root()}"


def launcher_text(python: str | None = None, warm_socket: str | None = None) -> str:
    """The launcher for an interpreter (default: this one), cold or warm."""
    from runtime.cni.server import NOT_ME

    fields = {"python": python or sys.executable, "root": package_root()}
    if warm_socket is None:
        return COLD.format(**fields)
    return WARM.format(**fields, socket=warm_socket, identity=identity(), not_me=NOT_ME)


def install(bin_dir: Path, python: str | None = None, warm_socket: str | None = None) -> Path:
    """Write `bin_dir/netc-cni` atomically and make it executable."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "netc-cni"
    temporary = bin_dir / f".netc-cni.{os.getpid()}.tmp"
    temporary.write_text(launcher_text(python, warm_socket))
    temporary.chmod(0o755)
    os.replace(temporary, target)
    return target
