"""A node's underlay addresses: the ones its peers route its pods through.

An admin names them (`netc agent --node-address 192.168.10.11/24`, one per
family), else they are the addresses of the interface that holds the
node's default route, one per family, with their prefixes: the prefix is
what tells host-gw and mixed routing which peers share the node's segment.
A Kubernetes Node lists its addresses without prefixes (its InternalIPs):
each takes the prefix it has on the interface of the node that holds it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from compiler.errors import Code, NetcError
from compiler.ir import IPInterface
from runtime.netlink.rtnl import Rtnl
from runtime.netns import node_namespace


class NoAddress(NetcError):
    """The node's underlay address cannot be told."""

    code = Code.BAD_CONFIG


def given(texts: Sequence[str]) -> tuple[IPInterface, ...]:
    """Addresses as the admin wrote them: ADDRESS/PREFIX, at most one per family."""
    found = []
    for text in texts:
        try:
            address = ipaddress.ip_interface(text)
        except ValueError:
            address = None
        if address is None or "/" not in text:
            raise NoAddress(
                f"--node-address {text!r} is not an address with its prefix",
                details="for example 192.168.10.11/24",
            )
        ip = address.ip
        if ip.is_link_local or ip.is_loopback or ip.is_multicast or ip.is_unspecified:
            raise NoAddress(f"--node-address {text!r} is not an address peers can route to")
        found.append(address)
    if len({a.version for a in found}) != len(found):
        raise NoAddress("--node-address gives two addresses of one family")
    return tuple(sorted(found, key=lambda a: a.version))


def of_default_route(node_netns: str | None = None) -> tuple[IPInterface, ...]:
    """The addresses of the interface each family's default route leaves by, with prefixes.

    The first global address of that interface per family; a family without
    a default route has none.
    """
    with node_namespace(node_netns):
        rtnl = Rtnl()
    try:
        found = []
        for family in (4, 6):
            default = next((r for r in rtnl.routes(family) if r.dst.endswith("/0")), None)
            if default is None:
                continue
            addresses = [
                ipaddress.ip_interface(a.cidr)
                for a in rtnl.addresses(family)
                if a.index == default.oif
            ]
            usable = [a for a in addresses if not a.ip.is_link_local]
            if usable:
                found.append(usable[0])
    finally:
        rtnl.close()
    if not found:
        raise NoAddress(
            "the node has no default route to take its address from",
            details="give it with --node-address ADDRESS/PREFIX",
        )
    return tuple(found)


def holding(ips: Sequence[str], node_netns: str | None = None) -> tuple[IPInterface, ...]:
    """Each address as the node's interface that holds it has it: with its prefix.

    `NoAddress` when one is on no interface of the node (a Node whose
    InternalIP is not this machine's, or the wrong --node-name).
    """
    with node_namespace(node_netns):
        rtnl = Rtnl()
    try:
        local = {
            interface.ip: interface
            for interface in (ipaddress.ip_interface(a.cidr) for a in rtnl.addresses())
        }
    finally:
        rtnl.close()
    found = []
    for text in ips:
        try:
            held = local.get(ipaddress.ip_address(text))
        except ValueError:
            held = None
        if held is None:
            raise NoAddress(
                f"{text!r} is on no interface of this node",
                details="give the node's address with --node-address ADDRESS/PREFIX",
            )
        found.append(held)
    return tuple(found)
