"""Names of the kernel objects netc creates, derived from who owns them.

An attachment is (network, container ID, interface name).  Everything it
owns -- the host-side veth, the ifb, its iptables chain, the comment on its
rules -- is named from a SHA-256 of that triple, so a DEL that arrives with no
prevResult and no runtimeConfig still finds exactly its own objects and never
another pod's.  Node-scoped objects shared by a network's pods (its NAT
chains) are named from the network name alone.

Kernel limits: link names hold 15 bytes (IFNAMSIZ - 1), iptables chain names
28 characters, rule comments 255.
"""

from __future__ import annotations

from compiler.datatypes import frozen
from compiler.digests import sha256
from compiler.planner.iptables import COMMENT_MAX


def _digest(*parts: str) -> str:
    return sha256("\0".join(parts).encode()).hexdigest()


@frozen
class AttachmentNames:
    """The owned names of one attachment."""

    network: str
    container_id: str
    ifname: str

    @property
    def key(self) -> str:
        """A file-name-safe identifier of the attachment."""
        return _digest(self.network, self.container_id, self.ifname)[:32]

    @property
    def host_veth(self) -> str:
        """The node-side end of the pod's veth pair."""
        return "veth" + self.key[:11]

    @property
    def ifb(self) -> str:
        """The ifb device that shapes the pod's egress."""
        return "nifb" + self.key[:11]

    @property
    def dnat_chain(self) -> str:
        """The nat-table chain holding this pod's hostPort DNAT rules."""
        return "NETC-DN-" + self.key[:20]

    @property
    def comment(self) -> str:
        """The iptables comment marking rules this attachment owns."""
        text = f"netc {self.network} {self.container_id} {self.ifname}"
        return text[:COMMENT_MAX]


@frozen
class NetworkNames:
    """Node-scoped names of one network (shared by all its pods)."""

    network: str

    @property
    def _key(self) -> str:
        return _digest(self.network)[:20]

    @property
    def hostport_chain(self) -> str:
        """Dispatch chain: PREROUTING/OUTPUT jump here, pods' DNAT chains hang off it."""
        return "NETC-HP-" + self._key

    @property
    def postrouting_chain(self) -> str:
        """Masquerade and hostPort SNAT rules of the network."""
        return "NETC-PO-" + self._key

    @property
    def localnet_chain(self) -> str:
        """raw-table chain dropping what arrives on the bridge for 127.0.0.0/8."""
        return "NETC-LO-" + self._key

    @property
    def comment(self) -> str:
        """The iptables comment on the network's entry rules."""
        return f"netc network {self.network}"[:COMMENT_MAX]


def owner_of(comment: str) -> tuple[str, str, str] | None:
    """(network, container ID, ifname) from an attachment's comment, or None if it is none.

    The parts hold no spaces (network names and container IDs follow libcni's
    rule, interface names have no whitespace), so the comment splits back.
    """
    parts = comment.split(" ")
    if len(parts) != 4 or parts[0] != "netc" or parts[1] == "network":
        return None
    return parts[1], parts[2], parts[3]


def hostport_claims_path(state_dir: str) -> str:
    """The directory of the host-port claims of every network with this state directory."""
    return f"{state_dir}/hostports"


def record_path(state_dir: str, network: str, container_id: str, ifname: str) -> str:
    """Where the runtime keeps the record of an attachment."""
    key = AttachmentNames(network, container_id, ifname).key
    return f"{state_dir}/{network}/{key}.json"
