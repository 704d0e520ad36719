"""The CNI protocol as the plugin speaks it: versions, errors, the call's environment.

Errors go to stdout as JSON with a well-known code, and nothing else does;
logs go to stderr.  The codes netc uses:

    1  incompatible CNI version          4  invalid environment variables
    6  stdin is not JSON                  7  invalid network configuration
    50 not available (STATUS)
    100 a kernel operation failed        101 hostPort refused by policy
    102 bandwidth refused by policy      103 host port taken by another pod
    104 no address left                  105 interface exists in the sandbox
    106 CHECK found a difference

Container IDs, interface names and netns paths are checked with libcni's
rules before anything touches the kernel.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")

CODE_INCOMPATIBLE_VERSION = 1
CODE_BAD_ENVIRONMENT = 4
CODE_DECODE = 6
CODE_BAD_CONFIG = 7
CODE_NOT_AVAILABLE = 50
CODE_DRIFT = 106


class CniError(Exception):
    """A failure reported to the runtime as CNI error JSON."""

    def __init__(self, code: int, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_json(self, version: str) -> dict[str, object]:
        """The error object, in the protocol version of the request."""
        document: dict[str, object] = {"cniVersion": version, "code": self.code,
                                       "msg": self.message}
        if self.details:
            document["details"] = self.details
        return document


@dataclass(frozen=True, slots=True)
class Call:
    """The environment of one invocation."""

    command: str
    container_id: str | None
    ifname: str | None
    netns: str | None
    args: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Call:
        """Read CNI_* variables; libcni sends empty strings for unused ones."""
        return cls(command=environ.get("CNI_COMMAND", ""),
                   container_id=environ.get("CNI_CONTAINERID") or None,
                   ifname=environ.get("CNI_IFNAME") or None,
                   netns=environ.get("CNI_NETNS") or None,
                   args=environ.get("CNI_ARGS", ""))

    def validate(self) -> None:
        """Refuse, with code 4, what an ADD, DEL or CHECK cannot work with."""
        missing = [name for name, value in (("CNI_CONTAINERID", self.container_id),
                                            ("CNI_IFNAME", self.ifname)) if not value]
        if self.command in ("ADD", "CHECK") and not self.netns:
            missing.append("CNI_NETNS")
        if missing:
            raise CniError(CODE_BAD_ENVIRONMENT, f"missing {', '.join(missing)}")
        if not CONTAINER_ID.match(self.container_id or ""):
            raise CniError(CODE_BAD_ENVIRONMENT,
                           f"CNI_CONTAINERID {self.container_id!r} has characters CNI refuses")
        check_ifname(self.ifname or "")
        if self.netns and not os.path.isabs(self.netns):
            raise CniError(CODE_BAD_ENVIRONMENT, f"CNI_NETNS {self.netns!r} is not an "
                           "absolute path")


def read_config(data: bytes) -> dict[str, Any]:
    """The JSON object on stdin (code 6 when it is not one)."""
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise CniError(CODE_DECODE, "stdin is not JSON", str(error)) from None
    if not isinstance(config, dict):
        raise CniError(CODE_DECODE, "stdin is not a JSON object")
    return config


def version_reply(config_version: str | None) -> dict[str, object]:
    """The VERSION answer."""
    return {"cniVersion": config_version or "1.0.0",
            "supportedVersions": list(SUPPORTED_VERSIONS)}


def check_ifname(name: str) -> None:
    """An interface name the kernel takes: 1..15 bytes, no `/`, `:` or whitespace."""
    if (not name or len(name.encode()) > 15 or name in (".", "..")
            or re.search(r"[/:\s]", name)):
        raise CniError(CODE_BAD_ENVIRONMENT, f"CNI_IFNAME {name!r} is not a valid interface "
                       "name", "1 to 15 bytes, not . or .., without /, : or whitespace")


def version_key(version: str) -> tuple[int, ...]:
    """A version string as comparable numbers ('0.4.0' -> (0, 4, 0))."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)
