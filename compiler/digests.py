"""SHA-256, without hashlib's start-up.

`hashlib` loads OpenSSL when it is imported, a cost every netc-cni call
would pay to hash only names and a conflist's digest (docs/benchmarks.md,
the start-up tricks).
CPython's own SHA-256 module gives the same digests and is built in; a
Python built without it falls back to hashlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol


class Hash(Protocol):
    """What netc reads of a hash object."""

    def digest(self) -> bytes:
        """The digest as bytes."""

    def hexdigest(self) -> str:
        """The digest in hexadecimal."""

    def update(self, data: bytes, /) -> None:
        """Hash `data` too."""


def _constructor(
    modules: tuple[str, ...] = ("_sha2", "_sha256", "hashlib"),
) -> Callable[[bytes], Hash]:
    """SHA-256 from the first of `modules` that imports.

    CPython 3.12 and later's built-in, 3.10 and 3.11's, or hashlib's; imported
    when netc is, never later (a warm server's child must not import, see
    runtime.cni.server).
    """
    for module in modules:
        try:
            constructor: Callable[[bytes], Hash] = importlib.import_module(module).sha256
        except ImportError:
            continue
        return constructor
    raise ImportError(f"no SHA-256 in any of {', '.join(modules)}")


sha256 = _constructor()
