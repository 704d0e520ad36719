"""What nf_tables holds for a chain of iptables-nft's tables, asked over netlink.

A pod's ADD must know whether its network's NAT chains are still in place
(an admin's `iptables -t nat -F`, a firewall reload), and asking iptables
costs a process per question -- and on a node whose nat table holds
kube-proxy's thousands of rules, a fetch of all of them each time.  One
NFT_MSG_GETCHAIN and one filtered NFT_MSG_GETRULE dump per chain answer the
question the ADD has: does the chain exist, how many rules does it hold, how
many rules jump to it.  The kernel counts both in the chain's use count (a
rule added to a chain and a jump to it each take a reference), so the jumps
are the use count less the rules.

Only the iptables-nft backend keeps its tables there: on a node that runs
iptables-legacy the chains are not found, and the caller asks iptables.
"""

from __future__ import annotations

import _socket
import errno
import struct

from compiler.datatypes import frozen
from runtime.netlink.channel import Channel, NetlinkError
from runtime.netlink.wire import parse_attrs, string

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETCHAIN = (NFNL_SUBSYS_NFTABLES << 8) | 4
NFT_MSG_GETRULE = (NFNL_SUBSYS_NFTABLES << 8) | 7
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_CHAIN_USE = 6
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFPROTO = {4: 2, 6: 10}
"""The nf_tables family of iptables' (4) and ip6tables' (6) tables."""
NFGENMSG = struct.Struct("=BBH")


@frozen
class Chain:
    """A chain as nf_tables has it: its rules and the rules that jump to it."""

    rules: int
    jumps: int


class Tables:
    """A NETLINK_NETFILTER socket in this process's network namespace."""

    def __init__(self) -> None:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.bind((0, 0))
        self.channel = Channel(sock)

    def close(self) -> None:
        """Release the socket."""
        self.channel.close()

    def chain(self, family: int, table: str, name: str) -> Chain | None:
        """The chain `name` of iptables' `table` of a family, or None where nf_tables has none."""
        header = NFGENMSG.pack(NFPROTO[family], 0, 0)
        what = f"look up chain {name} of the {table} table"
        body = (
            header
            + string(NFTA_CHAIN_TABLE, table).encode()
            + string(NFTA_CHAIN_NAME, name).encode()
        )
        try:
            reply = self.channel.get(NFT_MSG_GETCHAIN, body, what)
        except NetlinkError as error:
            if error.errno == errno.ENOENT:
                return None
            raise
        use = parse_attrs(reply, NFGENMSG.size).get(NFTA_CHAIN_USE, b"")
        if len(use) < 4:
            return None
        rules = len(
            self.channel.dump(
                NFT_MSG_GETRULE,
                header
                + string(NFTA_RULE_TABLE, table).encode()
                + string(NFTA_RULE_CHAIN, name).encode(),
                what,
            )
        )
        return Chain(rules, struct.unpack(">I", use[:4])[0] - rules)
