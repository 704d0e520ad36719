"""`netc install-plugin`: put a `netc-cni` launcher where container runtimes look.

Runtimes exec plugins with a reduced environment -- containerd with its own
PATH, podman's cleanup with conmon's -- so `#!/usr/bin/env python3` could
find another interpreter on DEL than on ADD (or a slow pyenv shim).  The
launcher names its interpreter by absolute path, runs it isolated (-I: no
PYTHON* variables, no user site) and without `site` (-S: see
docs/benchmarks.md, the start-up tricks), and puts netc's own packages on
sys.path itself -- after the standard library, so nothing beside netc in
that directory can shadow it.  The plugin needs nothing but the standard
library, so any Python 3.10+ will do; an optimised build (Debian's
/usr/bin/python3) starts faster than a source-built one.

With a warm socket the launcher first offers the call to `netc serve-cni`
(runtime/cni/server.py) and runs the plugin itself only when no server of
this netc answers.  Either way it answers VERSION itself, importing
nothing: runtimes ask every plugin for it whenever they load a network.
The same code is the entry point of the plugin artifact (runtime/artifact.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import runtime
from compiler.errors import Code
from runtime.files import write_atomically

LAUNCHER_HANDOVER_TIMEOUT = 2.0
"""Seconds a warm launcher waits on each step of the hand-over before running the call itself."""
OLDEST_PYTHON = (3, 10)
"""The oldest interpreter the plugin itself runs on (the warm hand-over runs on 3.9)."""

SHEBANG = """#!{python} -IS
# netc-cni launcher written by `netc install-plugin`; rerun it after moving netc.
"""

_SETTINGS = re.compile(r"^# settings: .*?^# end of settings\n", re.MULTILINE | re.DOTALL)


def package_root() -> str:
    """The directory holding netc's packages (the checkout, or site-packages)."""
    return str(Path(runtime.__file__).resolve().parent.parent)


PACKAGES = ("compiler", "runtime")
"""What the plugin is made of (the grammar is the compiler's, the plugin never parses)."""


def package_files() -> list[tuple[str, bytes]]:
    """(path inside the packages' root, content) of every module of netc's packages."""
    root = Path(package_root())
    return [
        (path.relative_to(root).as_posix(), path.read_bytes())
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    ]


def netc_command(python: str, paths: Sequence[str]) -> list[str]:
    """The command line of netc's CLI run by `python`.

    `paths` go first on its module path: the root of netc's packages, and of
    their dependencies where those live apart.  It calls itself `netc` in its
    messages, not `-c`.
    """
    start = (
        f"import sys; sys.argv[0] = 'netc'; sys.path[:0] = {list(paths)!r}; "
        "from runtime.cli import main; main()"
    )
    return [python, "-c", start]


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


def launcher_code(warm_socket: str | None, root: str | int | None) -> str:
    """The launcher's Python (runtime/launcher.py, its settings filled in), without a `#!` line.

    VERSION is answered there; a call is handed over when `warm_socket`
    answers, else the plugin runs from `root`: a directory, or the descriptor
    of the artifact holding netc's modules (runtime/artifact.py).
    """
    from runtime import launcher

    text = Path(launcher.__file__).read_text()
    settings = "".join(
        f"{name} = {value!r}\n" for name, value in launcher_settings(warm_socket, root).items()
    )
    return _SETTINGS.sub(lambda _: settings, text, count=1)


def launcher_settings(warm_socket: str | None, root: str | int | None) -> dict[str, object]:
    """The values of the launcher's settings, from the modules that own each fact."""
    from compiler.versions import CNI_VERSIONS, DEFAULT_CNI_VERSION
    from runtime.cni import server
    from runtime.deadline import CALL_DEADLINE, GRACE

    return {
        "ROOT": root,
        "SOCKET": warm_socket,
        "VERSIONS": list(CNI_VERSIONS),
        "DEFAULT_VERSION": DEFAULT_CNI_VERSION,
        "OLDEST": OLDEST_PYTHON,
        "UNSUITABLE": int(Code.HOST_UNSUITABLE),
        "IDENTITY": os.fsencode(identity()) if warm_socket else b"",
        "MAGIC": server.MAGIC,
        "PROTOCOL": server.PROTOCOL,
        "READY": server.READY,
        "STARTED": server.STARTED,
        "NOT_ME": server.NOT_ME,
        "GO": server.GO,
        # how long a stuck server may delay a call before the launcher runs it itself
        # (safe at any moment before GO: until then the server has run nothing)
        "HANDOVER_TIMEOUT": LAUNCHER_HANDOVER_TIMEOUT,
        # a call ends by its deadline (runtime/deadline.py), or its process does
        "STATUS_TIMEOUT": float(CALL_DEADLINE + GRACE + 15),
    }


def launcher_text(python: str | None = None, warm_socket: str | None = None) -> str:
    """The launcher script for an interpreter (default: this one), cold or warm."""
    return SHEBANG.format(python=python or sys.executable) + launcher_code(
        warm_socket, package_root()
    )


def install_plugin(
    bin_dir: Path, python: str | None = None, warm_socket: str | None = None
) -> list[str]:
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
        return [
            f"{error}; installed the Python launcher {target} instead (every call needs "
            f"{interpreter})"
        ]
    directory = bin_dir.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    cold, target = directory / shim.COLD, directory / "netc-cni"
    write_atomically(str(cold), launcher_text(interpreter, None).encode(), durable=True, mode=0o755)
    write_atomically(
        str(target),
        shim.for_bin_dir(binary, str(directory), warm_socket, [interpreter]),
        durable=True,
        mode=0o755,
    )
    return [
        f"installed {cold} (the cold path: {interpreter})",
        f"installed {target} (compiled; warm server: {warm_socket or 'none'})",
    ]


def install(bin_dir: Path, python: str | None = None, warm_socket: str | None = None) -> Path:
    """Write the Python launcher as `bin_dir/netc-cni` atomically and make it executable."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "netc-cni"
    write_atomically(
        str(target), launcher_text(python, warm_socket).encode(), durable=True, mode=0o755
    )
    return target
