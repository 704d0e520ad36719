"""The keywords of netdsl: which exist in which block, how often, with what block.

The grammar only knows statements; this table gives them meaning.  It drives
the structural check (unknown keywords with a suggestion, settings given
twice, blocks missing or misplaced), the merging of templates into networks,
and a test that keeps docs/language.md in step with the language.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

from compiler.ast import Block, Statement
from compiler.datatypes import frozen
from compiler.diagnostics import Diagnostic, Note


@frozen
class Keyword:
    """One statement of a block: its values described for people, and its nesting."""

    values: str
    summary: str
    many: bool = False
    block: str | None = None
    block_required: bool = False


RAW = "raw"
"""Context of plugin options: any key, JSON values, checked by `compiler.lower`."""

NETWORK_BODY: Mapping[str, Keyword] = {
    "cni": Keyword(
        "a CNI version: 0.3.0, 0.3.1, 0.4.0, 1.0.0 or 1.1.0",
        "the cniVersion of the conflist (default 1.0.0)",
    ),
    "use": Keyword(
        "template names", "merge the settings of templates into this network", many=True
    ),
    "priority": Keyword("a number from 0 to 99", "the NN in the NN-name.conflist file name"),
    "state-dir": Keyword(
        "a quoted directory path",
        "where the netc runtime keeps attachment records (default /run/netc)",
    ),
    "bridge": Keyword(
        "an optional bridge name (default cni0)", "attach pods to a Linux bridge", block="bridge"
    ),
    "plugin": Keyword(
        "the plugin type, such as calico",
        "a third-party main plugin whose options pass through",
        block=RAW,
        block_required=True,
    ),
    "chain": Keyword(
        "a plugin type, such as firewall or tuning",
        "a plugin run after netc's own, whose options pass through",
        many=True,
        block=RAW,
    ),
    "ipam": Keyword("nothing", "how pods get addresses", block="ipam", block_required=True),
    "conflist": Keyword(
        "nothing",
        "keys written at the top of the conflist as they are, such as disableCheck",
        block=RAW,
        block_required=True,
    ),
    "hostport": Keyword(
        "nothing", "hostPort support (the portMappings capability)", block="hostport"
    ),
    "bandwidth": Keyword(
        "nothing", "traffic shaping (the bandwidth capability)", block="bandwidth"
    ),
}

SWITCH = "optionally on or off (alone it means on)"

SCHEMA: Mapping[str, Mapping[str, Keyword]] = {
    "file": {
        "network": Keyword(
            "a network name",
            "a pod network, compiled to one conflist",
            many=True,
            block="network",
            block_required=True,
        ),
        "template": Keyword(
            "a template name",
            "settings shared by networks through `use`",
            many=True,
            block="template",
            block_required=True,
        ),
        "cluster": Keyword(
            "a cluster name",
            "a cluster's pod CIDRs, its nodes and the routing between them",
            many=True,
            block="cluster",
            block_required=True,
        ),
    },
    "cluster": {
        "pod-cidr": Keyword(
            "CIDRs, at most one IPv4 and one IPv6",
            "the cluster's pod address space (--cluster-cidr)",
        ),
        "service-cidr": Keyword(
            "CIDRs, at most one IPv4 and one IPv6",
            "the cluster's Service CIDRs (--service-cluster-ip-range), "
            "which pod CIDRs must not overlap (default 10.96.0.0/12)",
        ),
        "node-block": Keyword(
            "prefix lengths such as /24 and /64, one per pod CIDR",
            "the size of each node's pod subnet (default /24 and /64)",
        ),
        "routing": Keyword(
            "host-gw, vxlan or mixed",
            "how pods on different nodes reach each other (default host-gw)",
            block="routing",
        ),
        "node": Keyword(
            "a Kubernetes node name",
            "a node of the cluster",
            many=True,
            block="node",
            block_required=True,
        ),
        "membership": Keyword(
            "static, etcd or kubernetes",
            "where the cluster's members come from (default static: its `node` statements)",
            block="membership",
        ),
    },
    "membership": {
        "endpoints": Keyword(
            "http:// or https:// URLs such as https://10.0.0.1:2379",
            "the client URLs of the etcd members",
        ),
        "prefix": Keyword(
            "a key prefix such as /netc", "where the cluster's keys live in etcd (default /netc)"
        ),
        "lease": Keyword(
            "a duration from 1s to 24h, such as 60s or 2m",
            "how long a member outlives its agent's last renewal (default 60s)",
        ),
        "ca-file": Keyword("an absolute path", "the CA certificate that signed etcd's"),
        "cert-file": Keyword("an absolute path", "the agent's client certificate for etcd"),
        "key-file": Keyword("an absolute path", "the private key of the client certificate"),
        "annotation-prefix": Keyword(
            "a DNS subdomain and /, such as netc.dev/",
            "where netc's annotations live on each Node (kubernetes; default netc.dev/)",
        ),
    },
    "routing": {
        "vni": Keyword("a number from 1 to 16777215", "the VXLAN network identifier (default 1)"),
        "port": Keyword("a UDP port", "the VXLAN UDP port (default 8472, as flannel's)"),
        "device": Keyword("an interface name", "the VXLAN device on each node (default netc.1)"),
        "underlay-mtu": Keyword(
            "a number from 1280 to 65535", "the MTU of the network between nodes (default 1500)"
        ),
    },
    "node": {
        "address": Keyword(
            "underlay addresses with their prefix, such as 192.168.1.11/24",
            "where other nodes reach this one",
        ),
        "block": Keyword(
            "a number from 0", "which node-sized block of the pod CIDRs this node's pods get"
        ),
        "subnet": Keyword("CIDRs, one per pod CIDR", "this node's pod subnets, given outright"),
    },
    "network": NETWORK_BODY,
    "template": NETWORK_BODY,
    "bridge": {
        "mtu": Keyword("a number from 576 to 65535", "MTU of the bridge and the pod veths"),
        "gateway": Keyword(SWITCH, "put each subnet's gateway address on the bridge"),
        "masquerade": Keyword(SWITCH, "SNAT traffic leaving the pod subnets"),
        "hairpin": Keyword(SWITCH, "let a pod reach itself through the bridge"),
        "promiscuous": Keyword(SWITCH, "put the bridge in promiscuous mode"),
    },
    "ipam": {
        "cluster": Keyword(
            "a cluster name", "pods get addresses from their node's subnets of this cluster"
        ),
        "subnet": Keyword(
            "a CIDR such as 10.244.1.0/24 or fd00::/64",
            "a pod subnet; pods get one address per family",
            many=True,
            block="subnet",
        ),
        "route": Keyword(
            "a destination CIDR, optionally `via` an address", "a route in every pod", many=True
        ),
        "dns": Keyword(
            "nothing", "resolver settings returned to the runtime", block="dns", block_required=True
        ),
        "data-dir": Keyword(
            "a quoted directory path", "where reservations live (default /var/lib/cni/networks)"
        ),
        "static-ips": Keyword(SWITCH, "the runtime may ask for a pod's address (podman --ip)"),
        "node-local": Keyword(
            SWITCH,
            "every node hands out these same subnets: pod addresses are unique only within a node",
        ),
    },
    "subnet": {
        "range": Keyword("two addresses: FIRST .. LAST", "the addresses handed to pods"),
        "gateway": Keyword(
            "an address inside the subnet", "the gateway (default: the subnet's first address)"
        ),
    },
    "dns": {
        "nameservers": Keyword("addresses", "DNS servers", many=True),
        "search": Keyword("domain names", "search domains", many=True),
        "domain": Keyword("a domain name", "the local domain"),
        "options": Keyword("resolver options such as ndots:5", "resolv.conf options", many=True),
    },
    "hostport": {
        "allow": Keyword(
            "ports or ranges such as 8080, 30000..32767, 53/udp",
            "host ports pods may map (default: all)",
            many=True,
        ),
        "deny": Keyword("ports or ranges", "host ports pods may never map", many=True),
        "host-ip": Keyword("node addresses", "the only hostIPs a mapping may name", many=True),
        "snat": Keyword("on or off", "masquerade hairpin and localhost hostPort traffic"),
    },
    "bandwidth": {
        "limit": Keyword(
            "ingress RATE [burst SIZE] and/or egress RATE [burst SIZE]",
            "static limits for every pod; annotations are ignored",
        ),
        "default": Keyword(
            "ingress RATE and/or egress RATE", "limits for pods without bandwidth annotations"
        ),
        "max": Keyword(
            "ingress RATE and/or egress RATE",
            "the most a pod may ask for; larger requests are refused",
        ),
        "namespace": Keyword(
            "Kubernetes namespace names",
            "defaults and maximums for pods of these namespaces",
            many=True,
            block="namespace",
            block_required=True,
        ),
    },
    "namespace": {
        "default": Keyword(
            "ingress RATE and/or egress RATE",
            "limits for pods of the namespace without annotations",
        ),
        "max": Keyword(
            "ingress RATE and/or egress RATE", "the most a pod of the namespace may ask for"
        ),
    },
}


def check_structure(statements: tuple[Statement, ...], context: str) -> list[Diagnostic]:
    """Unknown keywords, repeated settings and misplaced blocks in a block and its children."""
    diagnostics: list[Diagnostic] = []
    allowed = SCHEMA[context]
    first_seen: dict[str, Statement] = {}
    for statement in statements:
        keyword = allowed.get(statement.keyword)
        if keyword is None:
            diagnostics.append(_unknown(statement, context))
            continue
        previous = first_seen.setdefault(statement.keyword, statement)
        if previous is not statement and not keyword.many:
            diagnostics.append(_twice(statement, previous, context))
        diagnostics += _check_block(statement, keyword)
    return diagnostics


def _check_block(statement: Statement, keyword: Keyword) -> list[Diagnostic]:
    if statement.block is None:
        if keyword.block_required:
            return [
                Diagnostic(
                    "E014",
                    f"`{statement.keyword}` needs a block",
                    statement.span,
                    expected=f"a `{{ ... }}` block after `{statement.keyword}`",
                    hint=f"`{statement.keyword}` holds {keyword.summary}; "
                    "add `{ ... }` at the end of its line",
                )
            ]
        return []
    if keyword.block is None:
        return [
            Diagnostic(
                "E014",
                f"`{statement.keyword}` takes no block",
                statement.block.span,
                expected=f"`{statement.keyword}` followed by {keyword.values}",
                hint="remove the braces and what they hold",
            )
        ]
    if keyword.block == RAW:
        return []
    return check_structure(statement.block.statements, keyword.block)


def _unknown(statement: Statement, context: str) -> Diagnostic:
    allowed = sorted(SCHEMA[context])
    close = difflib.get_close_matches(statement.keyword, allowed, n=1, cutoff=0.6)
    home = [
        name
        for name, keys in SCHEMA.items()
        if statement.keyword in keys and name not in (context, "template")
    ]
    if close:
        hint = f"did you mean `{close[0]}`?"
    elif home:
        hint = f"`{statement.keyword}` belongs in {_a(home[0])} block"
    else:
        hint = None
    where = "at the top of a file" if context == "file" else f"in {_a(context)} block"
    return Diagnostic(
        "E010",
        f"unknown keyword `{statement.keyword}` {where}",
        statement.key.span,
        expected="one of " + ", ".join(f"`{k}`" for k in allowed),
        hint=hint,
    )


def _a(context: str) -> str:
    """`context` in backquotes with its article: "a `bridge`", "an `ipam`"."""
    return f"{'an' if context[0] in 'aeiou' else 'a'} `{context}`"


def _twice(statement: Statement, previous: Statement, context: str) -> Diagnostic:
    return Diagnostic(
        "E011",
        f"`{statement.keyword}` is given twice in this `{context}` block",
        statement.key.span,
        expected=f"one `{statement.keyword}` per block",
        hint="remove one of them",
        notes=(Note("first given here", previous.span),),
    )


def walk(statements: tuple[Statement, ...], context: str) -> Iterator[tuple[Statement, str]]:
    """Every statement below a block with the context it sits in (raw plugin options excluded)."""
    for statement in statements:
        yield statement, context
        keyword = SCHEMA[context].get(statement.keyword)
        if keyword and keyword.block not in (None, RAW) and isinstance(statement.block, Block):
            yield from walk(statement.block.statements, keyword.block)
