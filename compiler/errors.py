"""One vocabulary of failures: the root exception and the CNI code of each kind of failure.

Every exception netc raises on purpose derives from `NetcError` and carries
the CNI error code it is reported under, so the plugin's boundary turns any
of them into an error object without looking at its class or its message.
The codes are the CNI specification's (1-11, 50) and netc's own (100 and up,
which the specification leaves to plugins); docs/runtime.md lists them.

The compiler raises some of these (policy refusals, unreadable pod options)
and the runtime the rest; both import this module, which imports nothing.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """CNI error codes."""

    INCOMPATIBLE_VERSION = 1
    BAD_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODE = 6
    BAD_CONFIG = 7
    TRY_AGAIN = 11
    NOT_AVAILABLE = 50
    OPERATION_FAILED = 100
    HOSTPORT_REFUSED = 101
    BANDWIDTH_REFUSED = 102
    HOSTPORT_TAKEN = 103
    NO_ADDRESS = 104
    INTERFACE_EXISTS = 105
    DRIFT = 106
    HOST_UNSUITABLE = 107
    """The node cannot run the plugin (no python3 of the version it needs)."""
    INTERNAL = 999


class NetcError(Exception):
    """A failure netc reports; `code` is its CNI error code, `details` optional detail text.

    Subclasses set a default `code`; a raise site may give another.
    """

    code: Code = Code.INTERNAL

    def __init__(self, message: str, code: Code | None = None, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
