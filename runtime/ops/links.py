"""Links, addresses and routes: the bridge, the pod's veth pair, the ifb.

The host end of a veth pair is created with its peer directly inside the
pod's namespace (one netlink request, no move), under a name derived from
the attachment so a DEL finds it again.  An ADD repeated for the same
attachment finds the pair in place and changes nothing; an interface of the
requested name that is *not* our pair makes the ADD fail, as CNI requires.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TypeVar

from compiler.errors import Code
from compiler.ir import mac_text
from compiler.planner.ops import Observation, Operation, Where, placeholders
from compiler.planner.params import (
    AddressParams,
    LinkBridgeParams,
    LinkHairpinParams,
    LinkIfbParams,
    LinkMasterParams,
    LinkUpParams,
    LinkVethParams,
    NeighbourForgetParams,
    RouteParams,
)
from runtime.netlink.rtnl import Link
from runtime.ops.base import (
    IN_PLACE_NOW,
    NOTHING_TO_KEEP,
    Blockable,
    CutsOff,
    Handler,
    KeptByDel,
    OperationRefused,
    Run,
    blocked,
    differs,
    existing_link,
    identified_link,
    missing,
)


class LinkBridgeHandler(KeptByDel, Blockable[LinkBridgeParams]):
    """A Linux bridge with the planned MTU and promiscuity (a `link.up` follows).

    A new bridge gets its own MAC pinned: otherwise it takes the lowest MAC of
    its ports and changes as pods come and go, leaving pods with a stale ARP
    entry for their gateway.  The MAC is given at creation: pinning the
    bridge's current address afterwards changes nothing the kernel notices,
    so its bridge ID stays 8000.0:0:0:0:0:0 and its carrier never follows the
    ports (operstate UNKNOWN).
    """

    params = LinkBridgeParams

    def ensure(self, op: Operation[LinkBridgeParams], run: Run) -> bool:
        rtnl = run.host.node
        name, mtu = op.params.name, op.params.mtu
        bridge = rtnl.link(name)
        created = bridge is None
        if bridge is None:
            rtnl.create(name, "bridge", mac=_random_mac())
            bridge = existing_link(run, Where.NODE, name)
        obstacle = _not_a_bridge(bridge)
        if obstacle:
            raise OperationRefused(obstacle)
        repaired = []
        if mtu and bridge.mtu != mtu:
            # In a request of its own: an MTU given in the creating request is not
            # "set by the user" for the kernel, which resets it to 1500 when the
            # bridge's last port leaves (the first pod's DEL).
            rtnl.set_mtu(bridge, mtu)
            repaired.append(f"mtu {bridge.mtu}, want {mtu}")
        if bridge.promiscuous != op.params.promiscuous:
            rtnl.set_flags(bridge, promiscuous=op.params.promiscuous)
            repaired.append("promiscuous mode differed")
        if repaired and not created:
            run.note(op, "repaired: " + ", ".join(repaired))
        return created or bool(repaired)

    def obstacle(self, op: Operation[LinkBridgeParams], run: Run) -> str | None:
        return _not_a_bridge(run.host.node.link(op.params.name))

    def observe(self, op: Operation[LinkBridgeParams], run: Run) -> Observation:
        bridge = run.host.node.link(op.params.name)
        if bridge is None:
            return missing()
        obstacle = _not_a_bridge(bridge)
        if obstacle:
            return blocked(obstacle)
        problems = []
        if op.params.mtu and bridge.mtu != op.params.mtu:
            problems.append(f"mtu {bridge.mtu}, want {op.params.mtu}")
        if bridge.promiscuous != op.params.promiscuous:
            problems.append("promiscuous mode differs")
        return differs(", ".join(problems)) if problems else IN_PLACE_NOW


def not_of_kind(link: Link | None, kind: str, alternative: str | None = None) -> str | None:
    """Why a link of a planned name is in the way: it is not of the planned kind (None: it is).

    netc adopts a link of its kind (a bridge another plugin made, such as
    flannel's cni0) but never changes one of another kind.
    """
    if link is None or link.kind == kind:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"{link.name} is a {link.kind or 'device'}, not {article} {kind}: netc never "
        f"changes a link it does not own; remove it (ip link del {link.name})"
        + (f", or {alternative}" if alternative else "")
    )


def _not_a_bridge(link: Link | None) -> str | None:
    return not_of_kind(link, "bridge", "name another bridge in the network")


def _random_mac() -> str:
    """A random locally administered unicast MAC, as the kernel would pick."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFE) | 0x02
    return mac_text(octets)


class LinkVethHandler(CutsOff[LinkVethParams]):
    """The pod's veth pair: host end in the node, `peer` in the pod."""

    params = LinkVethParams

    def ensure(self, op: Operation[LinkVethParams], run: Run) -> bool:
        name, peer = op.params.name, op.params.peer
        state = self._pair(op, run)
        if state == "paired":
            return False
        if state == "foreign":
            raise OperationRefused(
                f"interface {peer} already exists in the pod's network namespace",
                Code.INTERFACE_EXISTS,
            )
        if state == "stale":
            run.host.node.delete(name)
        run.host.node.create_veth(name, peer, run.host.sandbox.fd, op.params.mtu)
        return True

    def _pair(self, op: Operation[LinkVethParams], run: Run) -> str:
        """'paired', 'absent', 'stale' (host end without our peer) or 'foreign'.

        Paired means the host end's peer is the pod's interface by index *and*
        namespace: an index alone could be an interface of another namespace.
        """
        host = run.host.node.link(op.params.name)
        inside = run.host.link(Where.SANDBOX, op.params.peer)
        if inside is not None:
            paired = host is not None and run.host.node.paired(host, inside, run.host.sandbox.fd)
            return "paired" if paired else "foreign"
        return "stale" if host is not None else "absent"

    def remove(self, op: Operation[LinkVethParams], run: Run) -> None:
        _delete_if(run, op.params.name, "veth")

    def cut_off(self, op: Operation[LinkVethParams], run: Run) -> bool:
        return _down_if_veth(run, op.params.name)

    def observe(self, op: Operation[LinkVethParams], run: Run) -> Observation:
        state = self._pair(op, run)
        if state == "paired":
            return IN_PLACE_NOW
        if state == "absent":
            return missing()
        if state == "stale":
            return differs(f"{op.params.name} exists without {op.params.peer} in the pod")
        return differs(f"{op.params.peer} in the pod is not paired with {op.params.name}")


def _down_if_veth(run: Run, name: str) -> bool:
    """Set the node's veth `name` down, so no frame crosses it; False when there is none."""
    link = run.host.node.link(name)
    if link is None or link.kind != "veth":
        return False
    if link.up:
        run.host.node.set_flags(link, up=False)
    return True


def _delete_if(run: Run, name: str, kind: str) -> None:
    """Delete the node's link `name` if it is of `kind`.

    A device that only shares the derived name is someone else's: never ours to remove.
    """
    link = run.host.node.link(name)
    if link is not None and link.kind == kind:
        run.host.node.delete(name)


class LinkMasterHandler(KeptByDel, Handler[LinkMasterParams]):
    """A link enslaved to a bridge."""

    params = LinkMasterParams

    def ensure(self, op: Operation[LinkMasterParams], run: Run) -> bool:
        link = existing_link(run, Where.NODE, op.params.dev)
        master = identified_link(run, Where.NODE, op.params.master)
        if link.master == master.index:
            return False
        run.host.node.set_master(link, master)
        return True

    def observe(self, op: Operation[LinkMasterParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.dev)
        master = run.host.node.link(op.params.master)
        if link is None or master is None:
            return missing()
        return IN_PLACE_NOW if link.master == master.index else differs("not on the bridge")


class LinkHairpinHandler(KeptByDel, Handler[LinkHairpinParams]):
    """Hairpin mode of a bridge port."""

    params = LinkHairpinParams

    def ensure(self, op: Operation[LinkHairpinParams], run: Run) -> bool:
        link = existing_link(run, Where.NODE, op.params.dev)
        if link.hairpin == op.params.on:
            return False
        run.host.node.set_hairpin(link, op.params.on)
        return True

    def observe(self, op: Operation[LinkHairpinParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.dev)
        if link is None:
            return missing()
        return IN_PLACE_NOW if link.hairpin == op.params.on else differs("hairpin differs")


class LinkUpHandler(KeptByDel, Handler[LinkUpParams]):
    """A link administratively up, in the node or the pod."""

    params = LinkUpParams

    def ensure(self, op: Operation[LinkUpParams], run: Run) -> bool:
        link = existing_link(run, op.where, op.params.dev)
        if link.up:
            return False
        run.host.rtnl(op.where).set_flags(link, up=True)
        return True

    def observe(self, op: Operation[LinkUpParams], run: Run) -> Observation:
        link = run.host.link(op.where, op.params.dev)
        if link is None:
            return missing()
        return IN_PLACE_NOW if link.up else differs("down")


LINK_GROUP_BASE = 0x6E000000
"""An attachment's link group is this plus its host veth's index: unique while the veth lives."""


def _group_of(veth: Link) -> int:
    """The link group of the attachment whose host veth is `veth`."""
    return LINK_GROUP_BASE + veth.index


class LinkIfbHandler(Blockable[LinkIfbParams], CutsOff[LinkIfbParams]):
    """An ifb device in one link group with the pod's host veth; removed by a DEL.

    It is created down: the plan turns its IPv6 off before a `link.up`.

    Unregistering a link makes the kernel wait for RCU readers to finish with
    it, the slowest step of a DEL; links deleted together as a group share one wait.  The
    group is derived from the veth's index, which no other live link has, so
    a group holds one attachment's links; a DEL deletes it only when the ifb
    and the veth both still carry it, and deletes the ifb alone otherwise (an
    attachment made before groups, or a veth already gone with its pod).
    """

    params = LinkIfbParams

    def ensure(self, op: Operation[LinkIfbParams], run: Run) -> bool:
        name = op.params.name
        link = run.host.node.link(name)
        obstacle = not_of_kind(link, "ifb")
        if obstacle:
            raise OperationRefused(obstacle)
        group = self._group(op, run)
        if link is None:
            run.host.node.create(name, "ifb", group=group)
        elif link.group != group:
            run.host.node.set_group(link, group)
        else:
            return False
        return True

    @staticmethod
    def _group(op: Operation[LinkIfbParams], run: Run) -> int:
        """The attachment's link group, which its host veth joins here if it has not yet."""
        veth = existing_link(run, Where.NODE, op.params.veth)
        group = _group_of(veth)
        if veth.group != group:
            run.host.node.set_group(veth, group)
        return group

    def remove(self, op: Operation[LinkIfbParams], run: Run) -> None:
        node = run.host.node
        link, veth = node.link(op.params.name), node.link(op.params.veth)
        if link is None or link.kind != "ifb":
            return
        if veth is not None and veth.kind == "veth" and link.group == veth.group == _group_of(veth):
            node.delete_group(link.group)  # the ifb, the veth and its peer in the pod
        else:
            node.delete(link.name)

    def cut_off(self, op: Operation[LinkIfbParams], run: Run) -> bool:
        link = run.host.node.link(op.params.name)
        if link is None or link.kind != "ifb":
            return False
        _down_if_veth(run, op.params.veth)
        return True

    def obstacle(self, op: Operation[LinkIfbParams], run: Run) -> str | None:
        return not_of_kind(run.host.node.link(op.params.name), "ifb")

    def observe(self, op: Operation[LinkIfbParams], run: Run) -> Observation:
        link = run.host.node.link(op.params.name)
        if link is None:
            return missing()
        obstacle = not_of_kind(link, "ifb")
        if obstacle:
            return blocked(obstacle)
        veth = run.host.node.link(op.params.veth)
        if veth is not None and link.group != _group_of(veth):
            return differs(f"not in the link group of {veth.name}")
        return IN_PLACE_NOW


OnLinkParams = TypeVar("OnLinkParams", AddressParams, RouteParams)


class _OnLink(KeptByDel, Handler[OnLinkParams]):
    """Something that sits on a link (an address, a route): added unless present."""

    def ensure(self, op: Operation[OnLinkParams], run: Run) -> bool:
        link = identified_link(run, op.where, op.params.dev)
        if self._present(op, run, link):
            return False
        self._add(op, run, link)
        return True

    def observe(self, op: Operation[OnLinkParams], run: Run) -> Observation:
        link = run.host.link(op.where, op.params.dev)
        if link is None or not self._present(op, run, link):
            return missing()
        return IN_PLACE_NOW

    def _present(self, op: Operation[OnLinkParams], run: Run, link: Link) -> bool:
        raise NotImplementedError

    def _add(self, op: Operation[OnLinkParams], run: Run, link: Link) -> None:
        raise NotImplementedError


class AddressHandler(_OnLink[AddressParams]):
    """An address on a link, in the node or the pod."""

    params = AddressParams

    def _present(self, op: Operation[AddressParams], run: Run, link: Link) -> bool:
        wanted = ipaddress.ip_interface(op.params.address)
        return any(
            ipaddress.ip_interface(a.cidr) == wanted
            for a in run.host.rtnl(op.where).addresses(wanted.version, link)
        )

    def _add(self, op: Operation[AddressParams], run: Run, link: Link) -> None:
        run.host.rtnl(op.where).add_address(link, op.params.address)


class RouteHandler(_OnLink[RouteParams]):
    """A route in the pod's main table through its interface."""

    params = RouteParams

    def _present(self, op: Operation[RouteParams], run: Run, link: Link) -> bool:
        dst = ipaddress.ip_network(op.params.dst)
        return any(
            ipaddress.ip_network(r.dst) == dst
            and r.gateway == op.params.via
            and r.oif == link.index
            for r in run.host.rtnl(op.where).routes(dst.version)
        )

    def _add(self, op: Operation[RouteParams], run: Run, link: Link) -> None:
        run.host.rtnl(op.where).add_route(op.params.dst, op.params.via, link)


class NeighbourForgetHandler(Handler[NeighbourForgetParams]):
    """Drop a stale neighbour entry; nothing to verify afterwards.

    A DEL that knows no address (no record, a repeated DEL) has nothing to forget.
    """

    params = NeighbourForgetParams

    def ensure(self, op: Operation[NeighbourForgetParams], run: Run) -> bool:
        link = run.host.node.identified(op.params.dev)
        if link is None or placeholders(op.params.address):
            return False
        return run.host.node.delete_neighbour(link, op.params.address)

    def remove(self, op: Operation[NeighbourForgetParams], run: Run) -> None:
        self.ensure(op, run)

    def observe(self, op: Operation[NeighbourForgetParams], run: Run) -> Observation:
        return NOTHING_TO_KEEP


HANDLERS = (
    LinkBridgeHandler(),
    LinkVethHandler(),
    LinkMasterHandler(),
    LinkHairpinHandler(),
    LinkUpHandler(),
    LinkIfbHandler(),
    AddressHandler(),
    RouteHandler(),
    NeighbourForgetHandler(),
)
