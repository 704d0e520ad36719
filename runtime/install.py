"""`netc install-plugin`: put a `netc-cni` launcher where container runtimes look.

Runtimes exec plugins with a reduced environment -- containerd with its own
PATH, podman's cleanup with conmon's -- so `#!/usr/bin/env python3` could
find another interpreter on DEL than on ADD (or a slow pyenv shim).  The
launcher names this interpreter by absolute path, runs it isolated (-I: no
PYTHON* variables, no user site) and without `site` (-S: ~30 ms less start-up),
and puts netc's own packages on sys.path itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import runtime

LAUNCHER = '''#!{python} -IS
# netc-cni launcher written by `netc install-plugin`; rerun it after moving netc.
import sys
sys.path.insert(0, {root!r})
from runtime.cni.plugin import entry
entry()
'''


def launcher_text() -> str:
    """The launcher for this interpreter and this netc."""
    root = str(Path(runtime.__file__).resolve().parent.parent)
    return LAUNCHER.format(python=sys.executable, root=root)


def install(bin_dir: Path) -> Path:
    """Write `bin_dir/netc-cni` atomically and make it executable."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "netc-cni"
    temporary = bin_dir / f".netc-cni.{os.getpid()}.tmp"
    temporary.write_text(launcher_text())
    temporary.chmod(0o755)
    os.replace(temporary, target)
    return target
