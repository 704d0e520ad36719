"""netc-cni without Python on the node: the compiled shim, built and configured.

The shim (runtime/shim/netc-cni.c) answers VERSION and hands every other
call to the warm server, exactly as the Python launcher does, in a static
binary that needs nothing of the node.  What it must know -- the socket,
netc's identity, the CNI versions, the cold command to run when no server
answers -- is written into a block of its data marked `MARK`, so one
compiled binary serves every install and a call reads no file.

It is compiled where netc is built or installed: `netc image` compiles it
into the agent's image (for each architecture), `netc install-plugin` with
the machine's C compiler.  Reasons and measurements: docs/architecture.md,
"netc-cni without Python".
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from compiler.errors import Code, NetcError
from compiler.versions import CNI_VERSIONS, DEFAULT_CNI_VERSION

SOURCE = Path(__file__).resolve().parent / "shim" / "netc-cni.c"
PREBUILT = "runtime/shim/netc-cni"
"""Where an image holds the shim compiled for it, beside its source (below netc's root)."""
MARK = b"NETC-SHIM-CONFIG-1"
CONFIG_SIZE = 8192
FIELD = "\x1f"
"""Separates the words of the cold command (they may hold spaces)."""
COMPILERS = ("cc", "gcc", "clang")
FLAGS = ("-Os", "-static", "-s", "-Wall", "-Wextra", "-Werror")


class ShimUnavailable(NetcError):
    """No compiled shim for this machine, and no C compiler to make one."""

    code = Code.HOST_UNSUITABLE


def compiler() -> str | None:
    """The machine's C compiler, if it has one."""
    return next((found for name in COMPILERS if (found := shutil.which(name))), None)


@functools.cache
def compiled(cc: str | None = None) -> bytes:
    """The shim compiled by `cc` (default: the machine's C compiler), static and stripped."""
    chosen = cc or compiler()
    if chosen is None:
        raise ShimUnavailable(
            "no C compiler to build netc-cni's shim",
            details=f"install one (cc, gcc or clang), or run netc's agent, "
            f"whose image carries the shim; source: {SOURCE}",
        )
    with tempfile.TemporaryDirectory(prefix="netc-shim-") as work:
        out = os.path.join(work, "netc-cni")
        done = subprocess.run(
            [chosen, *FLAGS, "-o", out, str(SOURCE)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ShimUnavailable(
                f"{chosen} could not build netc-cni's shim: {done.stderr.strip()[-500:]}"
            )
        return Path(out).read_bytes()


def for_this_machine() -> bytes:
    """The shim for the machine netc runs on: the image's, else compiled with its C compiler."""
    try:
        return SOURCE.with_name(Path(PREBUILT).name).read_bytes()
    except FileNotFoundError:
        return compiled()


COLD = ".netc-cni-cold"
"""The cold fallback installed beside the shim: a Python plugin that serves no socket."""


def for_bin_dir(
    binary: bytes, bin_dir: str, socket: str | None, interpreters: Sequence[str]
) -> bytes:
    """The shim as netc installs it in `bin_dir`: calls handed to `socket`, else the cold file.

    The cold file, `bin_dir/.netc-cni-cold`, runs where one of `interpreters`
    is; a node without any answers CNI error 11 (try again later).
    """
    from runtime.install import identity

    return configure(
        binary,
        identity=identity(),
        socket=socket,
        cold=[os.path.join(bin_dir, COLD)],
        cold_requires=interpreters,
    )


def configure(
    binary: bytes,
    *,
    identity: str,
    socket: str | None,
    cold: Sequence[str] = (),
    cold_requires: Sequence[str] = (),
    handover_timeout: float = 2.0,
    status_timeout: float = 300.0,
) -> bytes:
    """`binary` with its settings written into its configuration block.

    `cold` is the command run when no server answers (the call's arguments
    follow), provided one of `cold_requires` is executable (an interpreter);
    otherwise, and without `cold`, the shim answers CNI error 11.
    """
    start = binary.find(MARK + b"\0")
    if start < 0 or binary.find(MARK + b"\0", start + 1) >= 0:
        raise ValueError("not netc-cni's shim: its configuration block is not there once")
    settings = {
        "identity": identity,
        "socket": socket or "",
        "version": DEFAULT_CNI_VERSION,
        "versions": ", ".join(f'"{v}"' for v in CNI_VERSIONS),
        "handover_ms": str(int(handover_timeout * 1000)),
        "status_ms": str(int(status_timeout * 1000)),
        "cold": FIELD.join(cold),
        "cold_requires": ":".join(cold_requires),
    }
    block = (
        MARK
        + b"\0"
        + b"".join(f"{key}={value}".encode() + b"\0" for key, value in settings.items() if value)
        + b"\0"
    )
    if any("\0" in value for value in settings.values()) or len(block) > CONFIG_SIZE:
        raise ValueError("the shim's settings do not fit its configuration block")
    return binary[:start] + block.ljust(CONFIG_SIZE, b"\0") + binary[start + CONFIG_SIZE :]
