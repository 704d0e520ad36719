"""What nf_tables holds for the chains of iptables-nft's tables, asked over netlink.

A pod's ADD must know whether its network's NAT chains are still in place
(an admin's `iptables -t nat -F`, a firewall reload), and asking iptables
costs a process per question -- and on a node whose nat table holds
kube-proxy's thousands of rules, a fetch of all of them each time.  A few
filtered NFT_MSG_GETRULE dumps answer the question the ADD has: how many
rules a chain of the network's own holds, and how many rules of the chains
that should jump to them (PREROUTING, OUTPUT, POSTROUTING) do.  The
dispatch chain, which holds a jump per pod, is never listed: its rules are
the pods', whatever their number, and a jump to it proves it exists (the
kernel refuses a jump to a missing chain, and deleting a chain jumped to).
A chain is asked for by NFT_MSG_GETCHAIN only when nothing shows it exists.

Only the iptables-nft backend keeps its tables there: on a node that runs
iptables-legacy the chains are not found, and the caller asks iptables.

`Commits` follows nf_tables' announcements instead, to learn when a
program's transaction is in before the program has ended.
"""

from __future__ import annotations

import _socket
import errno
import struct
from collections import Counter
from collections.abc import Collection, Iterable

from compiler.datatypes import frozen
from runtime.netlink.channel import Channel, NetlinkError
from runtime.netlink.wire import (
    MalformedReply,
    attributes,
    get_string,
    messages,
    parse_attrs,
    string,
)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETCHAIN = (NFNL_SUBSYS_NFTABLES << 8) | 4
NFT_MSG_GETRULE = (NFNL_SUBSYS_NFTABLES << 8) | 7
NFT_MSG_NEWGEN = (NFNL_SUBSYS_NFTABLES << 8) | 15
NFNLGRP_NFTABLES = 7
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_EXPRESSIONS = 4
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CHAIN = 2
NFPROTO = {4: 2, 6: 10}
"""The nf_tables family of iptables' (4) and ip6tables' (6) tables."""
NFGENMSG = struct.Struct("=BBH")


@frozen
class Chain:
    """A chain as nf_tables has it: its rules (None: not counted) and the rules jumping to it."""

    rules: int | None
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

    def shape(
        self,
        family: int,
        table: str,
        names: Iterable[str],
        counted: Collection[str],
        holders: Iterable[str],
    ) -> dict[str, Chain | None]:
        """Each named chain of iptables' `table` of a family, or None where it has none.

        The rules are counted for the chains in `counted`; the jumps are those
        of the rules of `holders`, the chains that hold the jumps into them.
        """
        jumps = Counter(
            target
            for holder in holders
            for rule in self._rules(family, table, holder)
            for target in _jump_targets(rule)
        )
        found: dict[str, Chain | None] = {}
        for name in names:
            rules = len(self._rules(family, table, name)) if name in counted else None
            there = bool(rules or jumps[name]) or self._exists(family, table, name)
            found[name] = Chain(rules, jumps[name]) if there else None
        return found

    def _rules(self, family: int, table: str, chain: str) -> list[bytes]:
        """The rule messages of a chain (none for a chain that is not there)."""
        body = (
            NFGENMSG.pack(NFPROTO[family], 0, 0)
            + string(NFTA_RULE_TABLE, table).encode()
            + string(NFTA_RULE_CHAIN, chain).encode()
        )
        what = f"list the rules of chain {chain} of the {table} table"
        try:
            return [reply for _, reply in self.channel.dump(NFT_MSG_GETRULE, body, what)]
        except NetlinkError as error:
            if error.errno == errno.ENOENT:
                return []
            raise

    def _exists(self, family: int, table: str, name: str) -> bool:
        body = (
            NFGENMSG.pack(NFPROTO[family], 0, 0)
            + string(NFTA_CHAIN_TABLE, table).encode()
            + string(NFTA_CHAIN_NAME, name).encode()
        )
        try:
            self.channel.get(NFT_MSG_GETCHAIN, body, f"look up chain {name} of the {table} table")
        except NetlinkError as error:
            if error.errno == errno.ENOENT:
                return False
            raise
        return True


def _jump_targets(rule: bytes) -> list[str]:
    """The chains a rule jumps or goes to: the chain of each immediate verdict it holds."""
    targets = []
    expressions = parse_attrs(rule, NFGENMSG.size).get(NFTA_RULE_EXPRESSIONS, b"")
    for _, element in attributes(expressions):
        expression = parse_attrs(element)
        if get_string(expression, NFTA_EXPR_NAME) != "immediate":
            continue
        data = parse_attrs(expression.get(NFTA_EXPR_DATA, b"")).get(NFTA_IMMEDIATE_DATA, b"")
        verdict = parse_attrs(parse_attrs(data).get(NFTA_DATA_VERDICT, b""))
        chain = get_string(verdict, NFTA_VERDICT_CHAIN)
        if chain:
            targets.append(chain)
    return targets


class Commits:
    """nf_tables' announcements of its commits in this network namespace, as they come.

    A commit ends with NFT_MSG_NEWGEN from the netlink port of the socket
    that committed.  A program's socket gets its process's pid (in its own
    pid namespace) as its port, unless another socket of the namespace
    holds that number already; then its commit comes from another port.
    Subscribe before the program starts, or its announcement may be gone.
    Closing the socket (`close`) waits, as the program's own release does,
    for nf_tables to free what a commit deleted, if it has not yet.
    """

    def __init__(self) -> None:
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        """For poll: readable when an announcement came."""
        return self.sock.fileno()

    def close(self) -> None:
        """Stop following."""
        self.sock.close()

    def ports(self) -> set[int | None]:
        """The ports of the commits announced since last asked.

        None stands for commits whose announcements were lost (a full
        buffer: ENOBUFS, or bytes that are not netlink messages).
        """
        found: set[int | None] = set()
        while True:
            try:
                datagram = self.sock.recv(1 << 16)
            except BlockingIOError:
                return found
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                found.add(None)
                continue
            try:
                found.update(m.port for m in messages(datagram) if m.kind == NFT_MSG_NEWGEN)
            except MalformedReply:
                found.add(None)
