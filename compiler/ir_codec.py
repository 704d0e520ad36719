"""The IR as JSON: how a compiled network travels inside a `--target netc` conflist.

Format (`FORMAT`, currently 2): each IR data type becomes an object holding
its fields that differ from their defaults; addresses and networks are
strings, tuples lists, and spans their statement paths (`compiler.locate`):
no file name, line or column, and no list of source files, so the encoding
-- and the conflist, and its digest -- depends only on what the network
means, not on how its source is spelled, commented or laid out.  Format 1
(spans as `[file, line, column, end_line, end_column]`) is still read.
The same rules serve any frozen data type of the compiler whose field types
are these (the runtime's attachment records hold a `PodContext` this way).
The conflist also carries a SHA-256 digest of this object so the runtime can
tell a conflist edited by hand from one `netc build` wrote.  A reader of a
newer format refuses it rather than guess.

This module runs inside the CNI plugin on every call, so it stays small and
imports nothing heavy.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from compiler import datatypes, ir
from compiler.digests import sha256
from compiler.errors import Code, NetcError
from compiler.identifiers import RESERVED_NETWORK_NAMES, interface_name_problem, is_name
from compiler.source import Span

FORMAT = 2
READABLE = (1, 2)

T = TypeVar("T")


class FormatError(NetcError):
    """The embedded network is not one this netc can read."""

    code = Code.BAD_CONFIG


def encode(value: object) -> dict[str, Any]:
    """The JSON object of a network (or of another data type of the same kinds of fields)."""
    return {
        f.name: _encode(getattr(value, f.name))
        for f in datatypes.fields(value)
        if f.metadata.get("portable", True) and not _is_default(value, f)
    }


def digest(document: dict[str, Any]) -> str:
    """A stable digest of an encoded network (keys sorted, no whitespace)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "sha256:" + sha256(canonical.encode()).hexdigest()


def decode(document: dict[str, Any]) -> ir.Network:
    """The network of a JSON object written by `encode`, its names and directories checked.

    A network arrives this way from a conflist or a ConfigMap, which anyone
    able to write them may have made by hand: whatever becomes a path --
    its name, its directories, its bridge's name in /proc/sys -- is checked
    as the compiler checks the source, so it cannot lead netc's files out of
    the places the network names.
    """
    network = decode_as(ir.Network, document)
    problem = path_problem(network)
    if problem is not None:
        raise FormatError(problem)
    return network


def path_problem(network: ir.Network) -> str | None:
    """Why a network's names or directories cannot be paths netc writes, or None."""
    if not is_name(network.name):
        return f"network name {network.name!r} is not a valid CNI network name"
    if network.name in RESERVED_NETWORK_NAMES:
        return f"network name {network.name!r} is reserved: netc's own files bear that name"
    bridge = network.bridge.name if network.bridge else None
    problem = interface_name_problem(bridge) if bridge is not None else None
    if problem:
        return f"bridge name {bridge!r} {problem}"
    directories = [network.state_dir, *([network.ipam.data_dir] if network.ipam else [])]
    for directory in directories:
        if not posixpath.isabs(directory) or posixpath.normpath(directory) != directory:
            return f"directory {directory!r} is not a normal absolute path"
    if network.ipam and network.ipam.data_dir == network.state_dir:
        # The compiler's E108: the network's lock and the reservations' would be one file.
        return (
            f"the state directory {network.state_dir!r} is the IPAM data directory: "
            "records and locks must not live among the address reservations"
        )
    return None


def decode_as(kind: type[T], document: Any) -> T:
    """A `kind` data type from a JSON object written by `encode`."""
    if not isinstance(document, dict):
        raise FormatError(f"the embedded {kind.__name__} is not an object")
    try:
        return _decode_fields(kind, document)
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError(f"the embedded {kind.__name__} is malformed: {error}") from error
    except RecursionError:
        raise FormatError(f"the embedded {kind.__name__} is nested too deeply") from None


def _encode(value: object) -> Any:
    if datatypes.is_datatype(value) and not isinstance(value, type):
        return value.path if isinstance(value, Span) else encode(value)
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(
        value,
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network
        | ipaddress.IPv4Interface
        | ipaddress.IPv6Interface,
    ):
        return str(value)
    return value


def _is_default(instance: object, field: datatypes.Field) -> bool:
    value = getattr(instance, field.name)
    if field.default is not datatypes.MISSING:
        return bool(value == field.default)
    if field.default_factory is not datatypes.MISSING:
        return bool(value == field.default_factory())
    return False


def _decode(kind: Any, data: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return _decode_union(typing.get_args(kind), data)
    if origin is tuple:
        if not isinstance(data, list):  # a string would read as a tuple of its characters
            raise TypeError(f"expected a list, found {type(data).__name__}")
        (item, _ellipsis) = typing.get_args(kind)
        return tuple(_decode(item, d) for d in data)
    if kind is Span:
        return _span(data)
    if isinstance(kind, type) and datatypes.is_datatype(kind):
        return _decode_fields(kind, data)
    if kind in (ir.IPAddress, ir.IPNetwork, ir.IPInterface):
        return _decode_union(typing.get_args(kind), data)
    return _scalar(kind, data)


def _decode_fields(kind: type[T], data: Any) -> T:
    if not isinstance(data, Mapping):
        raise TypeError(f"expected an object for {kind.__name__}, found {type(data).__name__}")
    hints = _hints(kind)
    return kind(**{name: _decode(hints[name], value) for name, value in data.items()})


def _span(data: Any) -> Span:
    if isinstance(data, str):
        return Span.at(data)
    file, line, column, end_line, end_column = data  # format 1
    return Span(str(file), int(line), int(column), int(end_line), int(end_column))


def _decode_union(options: tuple[Any, ...], data: Any) -> Any:
    if data is None and type(None) in options:
        return None
    addresses = (ipaddress.IPv4Interface, ipaddress.IPv4Address, ipaddress.IPv4Network)
    if any(kind in options for kind in addresses) and not isinstance(data, str):
        # encode writes them as strings; ipaddress would take 5 or true for 0.0.0.5, 0.0.0.1
        raise TypeError(f"expected an address as a string, found {type(data).__name__}")
    if ipaddress.IPv4Interface in options:
        return ipaddress.ip_interface(data)
    if ipaddress.IPv4Address in options:
        return ipaddress.ip_address(data)
    if ipaddress.IPv4Network in options:
        return ipaddress.ip_network(data)
    (real,) = (o for o in options if o is not type(None))
    return _decode(real, data)


def _scalar(kind: Any, data: Any) -> Any:
    if typing.get_origin(kind) is dict or kind is typing.Any:
        return data
    if kind in (str, int, bool) and type(data) is kind:
        return data
    raise TypeError(f"expected {kind.__name__}, found {type(data).__name__}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(kind: type) -> dict[str, Any]:
    """A class's field types, resolved once per process (`get_type_hints` evaluates them)."""
    hints = _HINTS.get(kind)
    if hints is None:
        hints = _HINTS[kind] = typing.get_type_hints(kind, vars(sys.modules[kind.__module__]))
    return hints


def warm() -> None:
    """Resolve the type hints of every class the runtime decodes, once per long-lived process.

    The IR's, and the pod context's, which attachment records hold.
    """
    from compiler.planner import context

    for value in (*vars(ir).values(), *vars(context).values()):
        if datatypes.is_datatype(value) and isinstance(value, type):
            _hints(value)
