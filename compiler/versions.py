"""The CNI specification versions netc writes and speaks, and how to compare them.

A module of its own, importing nothing: the plugin's VERSION answer needs
these and must not wait for the IR's imports.
"""

from __future__ import annotations

CNI_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_CNI_VERSION = "1.0.0"
"""What conflists say unless told otherwise: podman 4.3 and containerd 1.6 refuse 1.1.0."""


def version_key(version: str) -> tuple[int, ...]:
    """A version string as comparable numbers ('0.4.0' -> (0, 4, 0)); junk sorts first."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)
