"""What nf_tables holds for the chains of iptables-nft's tables, asked over netlink.

A pod's ADD must know whether its network's NAT chains are still in place
(an admin's `iptables -t nat -F`, a firewall reload), and asking iptables
costs a process per question -- and on a node whose nat table holds
kube-proxy's thousands of rules, a fetch of all of them each time.  A few
filtered NFT_MSG_GETRULE dumps answer the question the ADD has: how many
rules a chain of the network's own holds, and how many rules of the chains
that should jump to them (PREROUTING, OUTPUT, POSTROUTING) do.  The
dispatch chain, which holds a jump per pod, is not listed for that: its
rules are the pods', whatever their number, and a jump to it proves it
exists (the kernel refuses a jump to a missing chain, and deleting a chain
jumped to).  A chain is asked for by NFT_MSG_GETCHAIN only when nothing
shows it exists.

A pod's DEL removes its chain and the jump to it the same way, with no
process: one listing of the dispatch chain for the jump's handle, then one
transaction (`Tables.remove_chain`).

Only the iptables-nft backend keeps its tables there: on a node that runs
iptables-legacy the chains are not found, and the caller asks iptables.
"""

from __future__ import annotations

import errno
import struct
from collections import Counter
from collections.abc import Collection, Iterable

from compiler.datatypes import frozen
from runtime.netlink.channel import Channel, NetlinkError, netlink_socket
from runtime.netlink.wire import (
    NLM_F_ACK,
    Attr,
    attributes,
    get_string,
    parse_attrs,
    string,
)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETCHAIN = (NFNL_SUBSYS_NFTABLES << 8) | 4
NFT_MSG_DELCHAIN = (NFNL_SUBSYS_NFTABLES << 8) | 5
NFT_MSG_GETRULE = (NFNL_SUBSYS_NFTABLES << 8) | 7
NFT_MSG_DELRULE = (NFNL_SUBSYS_NFTABLES << 8) | 8
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_HANDLE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CHAIN = 2
NFPROTO = {4: 2, 6: 10}
"""The nf_tables family of iptables' (4) and ip6tables' (6) tables."""
NFGENMSG = struct.Struct("=BBH")
BATCH = struct.pack("=BB", 0, 0) + struct.pack(">H", NFNL_SUBSYS_NFTABLES)
"""The body of a batch's begin and end: nfgenmsg with the subsystem as its resource id."""
HANDLE = struct.Struct(">Q")
REMOVE_ATTEMPTS = 5
"""How often `Tables.remove_chain` lists the jumps again when one was gone by its commit."""


@frozen
class Chain:
    """A chain as nf_tables has it: its rules (None: not counted) and the rules jumping to it."""

    rules: int | None
    jumps: int


class Tables:
    """A NETLINK_NETFILTER socket in this process's network namespace (or `channel`)."""

    def __init__(self, channel: Channel | None = None) -> None:
        self.channel = channel or Channel(netlink_socket(NETLINK_NETFILTER))

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

    def remove_chain(self, family: int, table: str, chain: str, holder: str) -> bool:
        """Delete `chain` and the rules of `holder` jumping to it, in one transaction.

        False when there is no such chain (a repeated DEL's).  The jumps are
        deleted by their handles, which nf_tables never gives again, so the
        transaction states no generation and stands whatever was committed
        since the listing -- where iptables-nft's, stating the generation it
        read, is refused and read again.  A jump gone by the commit (ENOENT)
        sends it back to the listing.
        """
        what = f"delete chain {chain} of the {table} table and its jumps from {holder}"
        for _ in range(REMOVE_ATTEMPTS):
            handles = self._jumps(family, table, holder, chain)
            try:
                self.channel.batch(_deletion(family, table, chain, holder, handles), what)
            except NetlinkError as error:
                if error.errno != errno.ENOENT:
                    raise
                if not handles and not self._exists(family, table, chain):
                    return False
                continue
            return True
        raise NetlinkError(errno.ENOENT, what, f"its jumps changed {REMOVE_ATTEMPTS} times over")

    def _jumps(self, family: int, table: str, holder: str, chain: str) -> list[int]:
        """The handles of the rules of `holder` that jump or go to `chain`.

        A rule that does not hold the name is not parsed: the holder is a
        dispatch chain with a jump per pod.
        """
        name = chain.encode() + b"\0"
        return [
            HANDLE.unpack(parse_attrs(rule, NFGENMSG.size)[NFTA_RULE_HANDLE])[0]
            for rule in self._rules(family, table, holder)
            if name in rule and chain in _jump_targets(rule)
        ]

    def _rules(self, family: int, table: str, chain: str) -> list[bytes]:
        """The rule messages of a chain (none for a chain that is not there)."""
        what = f"list the rules of chain {chain} of the {table} table"
        body = _rules_of(family, table, chain)
        try:
            return [reply for _, reply in self.channel.dump(NFT_MSG_GETRULE, body, what)]
        except NetlinkError as error:
            if error.errno == errno.ENOENT:
                return []
            raise

    def _exists(self, family: int, table: str, name: str) -> bool:
        body = _chain_named(family, table, name)
        try:
            self.channel.get(NFT_MSG_GETCHAIN, body, f"look up chain {name} of the {table} table")
        except NetlinkError as error:
            if error.errno == errno.ENOENT:
                return False
            raise
        return True


def _deletion(
    family: int, table: str, chain: str, holder: str, handles: Iterable[int]
) -> list[tuple[int, int, bytes]]:
    """The batch deleting the rules `handles` of `holder`, then `chain`.

    The chain is emptied first, by a rule deletion that names no handle,
    so that no kernel refuses it for the rules it holds.
    """
    jumps = _rules_of(family, table, holder)
    deletions = [
        *((NFT_MSG_DELRULE, jumps + _handle(handle)) for handle in handles),
        (NFT_MSG_DELRULE, _rules_of(family, table, chain)),
        (NFT_MSG_DELCHAIN, _chain_named(family, table, chain)),
    ]
    return [
        (NFNL_MSG_BATCH_BEGIN, 0, BATCH),
        *((kind, NLM_F_ACK, body) for kind, body in deletions),
        (NFNL_MSG_BATCH_END, 0, BATCH),
    ]


def _rules_of(family: int, table: str, chain: str) -> bytes:
    """A rule request's header and attributes naming a chain of a table: all its rules."""
    return (
        NFGENMSG.pack(NFPROTO[family], 0, 0)
        + string(NFTA_RULE_TABLE, table).encode()
        + string(NFTA_RULE_CHAIN, chain).encode()
    )


def _chain_named(family: int, table: str, chain: str) -> bytes:
    """A chain request's header and attributes naming a chain of a table."""
    return (
        NFGENMSG.pack(NFPROTO[family], 0, 0)
        + string(NFTA_CHAIN_TABLE, table).encode()
        + string(NFTA_CHAIN_NAME, chain).encode()
    )


def _handle(handle: int) -> bytes:
    return Attr(NFTA_RULE_HANDLE, HANDLE.pack(handle)).encode()


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
