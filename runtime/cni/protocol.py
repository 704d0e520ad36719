"""The CNI protocol as the plugin speaks it: versions, errors, the call's environment.

Errors go to stdout as JSON with the code of the `NetcError` raised
(`compiler.errors.Code`), and nothing else does; logs go to stderr.

Container IDs, interface names and netns paths are checked with libcni's
rules before anything touches the kernel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from compiler.datatypes import frozen
from compiler.errors import Code, NetcError
from compiler.identifiers import interface_name_problem, is_name
from compiler.versions import CNI_VERSIONS, DEFAULT_CNI_VERSION


def error_reply(error: NetcError, version: str) -> dict[str, object]:
    """The CNI error object of a failure, in the protocol version of the request."""
    document: dict[str, object] = {
        "cniVersion": version,
        "code": int(error.code),
        "msg": error.message,
    }
    if error.details:
        document["details"] = error.details
    return document


@frozen
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
        return cls(
            command=environ.get("CNI_COMMAND", ""),
            container_id=environ.get("CNI_CONTAINERID") or None,
            ifname=environ.get("CNI_IFNAME") or None,
            netns=environ.get("CNI_NETNS") or None,
            args=environ.get("CNI_ARGS", ""),
        )

    def validate(self) -> None:
        """Refuse, with code 4, what an ADD, DEL or CHECK cannot work with."""
        missing = [
            name
            for name, value in (("CNI_CONTAINERID", self.container_id), ("CNI_IFNAME", self.ifname))
            if not value
        ]
        if self.command in ("ADD", "CHECK") and not self.netns:
            missing.append("CNI_NETNS")
        if missing:
            raise NetcError(f"missing {', '.join(missing)}", Code.BAD_ENVIRONMENT)
        if not is_name(self.container_id or ""):
            raise NetcError(
                f"CNI_CONTAINERID {self.container_id!r} has characters CNI refuses",
                Code.BAD_ENVIRONMENT,
            )
        check_ifname(self.ifname or "")
        if self.netns and not os.path.isabs(self.netns):
            raise NetcError(
                f"CNI_NETNS {self.netns!r} is not an absolute path", Code.BAD_ENVIRONMENT
            )


def read_config(data: bytes) -> dict[str, Any]:
    """The JSON object on stdin (code 6 when it is not one).

    UTF-8 and nothing else, as libcni and the Go plugins read it: a byte order
    mark or NUL bytes are refused, not taken as a hint of UTF-16 or UTF-32.
    (`json.loads` of bytes would guess an encoding, whose codec a warm
    server's child -- its imports closed -- cannot load.)
    """
    try:
        config = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise NetcError("stdin is not JSON", Code.DECODE, str(error)) from None
    except RecursionError:
        raise NetcError("stdin is not JSON netc reads: nested too deeply", Code.DECODE) from None
    if not isinstance(config, dict):
        raise NetcError("stdin is not a JSON object", Code.DECODE)
    return config


def version_reply(config_version: str | None) -> dict[str, object]:
    """The VERSION answer."""
    return {
        "cniVersion": config_version or DEFAULT_CNI_VERSION,
        "supportedVersions": list(CNI_VERSIONS),
    }


def check_ifname(name: str) -> None:
    """An interface name the kernel takes (`compiler.identifiers`), else code 4."""
    problem = interface_name_problem(name)
    if problem:
        raise NetcError(
            f"CNI_IFNAME {name!r} {problem}",
            Code.BAD_ENVIRONMENT,
            "1 to 15 bytes, not . or .., without /, :, quotes or whitespace",
        )
