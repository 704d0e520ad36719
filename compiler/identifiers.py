"""The rules names must follow: network names and container IDs (libcni's), interface names.

One home for them, importing only `re`: the compiler checks `.netdsl` names
with them and the plugin checks what a runtime sends (CNI_CONTAINERID,
CNI_IFNAME) on every call.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
"""libcni's rule for network names and container IDs (match with `fullmatch`)."""

RESERVED_NETWORK_NAMES = {
    "hostports": "the host-port claims, `<state-dir>/hostports/`",
    "cni.sock": "the warm server's socket, `/run/netc/cni.sock`",
}
"""netc's own entries of a state directory, beside the networks' directories, and what each
is: a network of one of these names would share or block it."""

IFNAMSIZ = 16
LINK_NAME_MAX = IFNAMSIZ - 1
"""Bytes in a Linux interface name."""


def is_name(text: str) -> bool:
    """Whether `text` is a valid network name or container ID."""
    return NAME.fullmatch(text) is not None


def interface_name_problem(name: str) -> str | None:
    """Why the kernel would refuse `name` as an interface name, or None when it would not.

    The kernel takes 1 to 15 bytes, not `.` or `..`, without `/`, `:` or
    whitespace; netc also refuses control characters and quotes, which no
    runtime sends and which would have to be escaped wherever the name is
    written (rule comments, logs).
    """
    if not name:
        return "is empty"
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        return "is not UTF-8"
    if size > LINK_NAME_MAX:
        return f"is {size} bytes long; the kernel allows {LINK_NAME_MAX}"
    if name in (".", "..") or re.search(r"[/:\s\"'\\\x00-\x1f\x7f]", name):
        return "contains a character the kernel refuses"
    return None


_NODE_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def is_node_name(text: str) -> bool:
    """Whether `text` is a Kubernetes node name: a DNS subdomain (RFC 1123), at most 253."""
    return len(text) <= 253 and all(_NODE_LABEL.fullmatch(part) for part in text.split("."))
