"""Property tests: no input makes the compiler, the renderer or fmt raise.

Whatever the text or bytes, `compile_sources` returns a `Compilation` (networks
or diagnostics), `render_text` renders its diagnostics, valid networks emit
for both targets, and fmt is idempotent on whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import emit, ir_codec
from compiler.diagnostics import CODES, render_json, render_text
from compiler.fmt import format_document
from compiler.ir import Cluster
from compiler.pipeline import Compilation, compile_sources
from compiler.schema import SCHEMA
from compiler.source import SourceFile
from compiler.syntax import decode, parse, quotable
from tests.support import comparable, leaks_lark_names, portable

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYWORDS = sorted({keyword for block in SCHEMA.values() for keyword in block})
VALUES = [
    "pods",
    "cni0",
    "calico",
    "10.244.1.0/24",
    "10.244.1.10",
    "fd00::/64",
    "fd00::1",
    "0.0.0.0/0",
    "..",
    "1500",
    "80",
    "30000..32767",
    "53/udp",
    "10M",
    "1Gi",
    "10MB",
    "on",
    "off",
    "1.0.0",
    "0.4.0",
    "via",
    "ingress",
    "egress",
    "burst",
    "true",
    "42",
    '"info"',
    '"/var/lib/x"',
    '"',
    "-x",
    "ünïcode",
    "etcd",
    "static",
    "https://10.0.0.1",
    "http://e:2379",
    "https://[fd00::1]:2379",
    "/netc",
    "60s",
    "1h30m",
    "/etc/ca.crt",
]
PUNCTUATION = ["{", "}", "[", "]", ",", ";", "\n", "\n", " ", " ", "\t", "# note\n", "\r\n"]
FRAGMENTS = st.sampled_from(KEYWORDS + VALUES + PUNCTUATION)
NETDSL_ISH = st.lists(FRAGMENTS, max_size=60).map(" ".join) | st.lists(FRAGMENTS, max_size=60).map(
    "".join
)

BLOCK_LINES = {
    "bridge cni0": ["mtu 1500", "mtu 70000", "gateway", "masquerade off", "hairpin", "promiscuous"],
    "ipam": [
        "subnet 10.244.1.0/24",
        "subnet 10.244.1.0/24 { range 10.244.1.10 .. 10.244.1.20 }",
        "subnet fd00::/64",
        "subnet 10.244.0.0/16",
        "route 0.0.0.0/0",
        "route ::/0 via fd00::1",
        "dns { nameservers 10.96.0.10; search svc.local }",
        'data-dir "/var/lib/x"',
    ],
    "hostport": [
        "allow 30000..32767, 8080",
        "deny 22",
        "deny 1..65535",
        "host-ip 10.0.0.1",
        "snat off",
        "allow 53/udp",
    ],
    "bandwidth": [
        "limit ingress 10M burst 1M",
        "default ingress 10M egress 5M",
        "max egress 1G",
        "max ingress 5M",
        "namespace batch { default egress 1M }",
    ],
}


@st.composite
def networks(draw) -> str:
    """A bridge network of plausible settings, mostly valid: reaches lowering and emitters."""
    lines = [f"network {draw(st.sampled_from(['pods', 'batch', '-bad']))} {{"]
    lines += draw(
        st.lists(st.sampled_from(["cni 1.0.0", "cni 0.3.1", "priority 5"]), max_size=2, unique=True)
    )
    for header, options in BLOCK_LINES.items():
        if header in ("bridge cni0", "ipam") or draw(st.booleans()):
            body = draw(st.lists(st.sampled_from(options), max_size=3, unique=True))
            if header == "ipam":
                body = ["subnet 10.244.1.0/24", *body]
            lines += [f"    {header} {{", *(f"        {line}" for line in body), "    }"]
    return "\n".join([*lines, "}", ""])


MEMBERSHIP_LINES = [
    "endpoints https://10.0.0.1:2379, https://10.0.0.2",
    "endpoints http://etcd.lab",
    'endpoints "https://[fd00::1]:2379"',
    "endpoints https://[fd00::1]",
    "endpoints 10.0.0.1:2379",
    "endpoints https://a, https://a:2379",
    "prefix /netc",
    "prefix /",
    "prefix x/",
    "lease 60s",
    "lease 2m30s",
    "lease 0s",
    "lease 90",
    "ca-file /etc/netc/ca.crt",
    "cert-file /etc/c.crt",
    "key-file /etc/c.key",
    "key-file etc/../c.key",
]
NODE_LINES = [
    "node n1 { block 1 }",
    "node n2 { block 2; address 192.168.1.2/24 }",
    "node n3 { subnet 10.244.3.0/24 }",
    "node n4 { }",
    "node n1 { block 2 }",
    "node n5 { block 300 }",
]


@st.composite
def clusters(draw) -> str:
    """A cluster with a membership of plausible settings and some pins, and a network using it."""
    source = draw(st.sampled_from(["etcd", "etcd", "static", "kubernetes", ""]))
    lines = [
        "cluster prod {",
        "    pod-cidr 10.244.0.0/16",
        f"    routing {draw(st.sampled_from(['vxlan', 'host-gw', 'mixed']))}",
    ]
    if source:
        body = draw(st.lists(st.sampled_from(MEMBERSHIP_LINES), max_size=5, unique=True))
        block = draw(st.booleans()) or source == "etcd"
        lines += [
            f"    membership {source}" + (" {" if block else ""),
            *(f"        {line}" for line in body if block),
            *(["    }"] if block else []),
        ]
    lines += [f"    {n}" for n in draw(st.lists(st.sampled_from(NODE_LINES), max_size=3))]
    lines += [
        "}",
        "network pods {",
        "    bridge cni0 { gateway }",
        "    ipam { cluster prod; route 0.0.0.0/0 }",
        "}",
        "",
    ]
    return "\n".join(lines)


def check(source: SourceFile) -> Compilation:
    """Compile and render; assert the invariants every result keeps."""
    compilation = compile_sources([source])
    assert isinstance(compilation, Compilation)
    assert compilation.ok or not compilation.networks
    sources = {source.name: source}
    render_text(compilation.diagnostics, sources)
    render_json(compilation.diagnostics, sources)
    for diagnostic in compilation.diagnostics:
        assert diagnostic.code in CODES
        assert not leaks_lark_names(f"{diagnostic.message} {diagnostic.expected}")
        assert diagnostic.span is None or diagnostic.span.line <= source.text.count("\n") + 1
    for network in compilation.networks:
        for target in emit.TARGETS:
            emit.render(emit.conflist(network, target))
            emit.target_diagnostics(network, target, network.cni_version)
        assert ir_codec.decode(ir_codec.encode(network)) == portable(network)
    for cluster in compilation.clusters:
        assert ir_codec.decode_as(Cluster, ir_codec.encode(cluster)) == portable(cluster)
    return compilation


@PROPERTIES
@given(st.text())
def test_any_text_compiles_or_is_diagnosed(text):
    check(SourceFile("any.netdsl", text))


@PROPERTIES
@given(st.binary())
def test_any_bytes_decode_or_are_diagnosed(data):
    source, problems = decode(data, "any.netdsl")
    if source is None:
        assert [d.code for d in problems] in (["E004"], ["E005"])
        quoted = quotable(data, "any.netdsl")
        render_text(problems, {quoted.name: quoted} if quoted else {})
    else:
        check(source)


@PROPERTIES
@given(NETDSL_ISH)
def test_netdsl_fragments_compile_or_are_diagnosed(text):
    check(SourceFile("frag.netdsl", text))


@PROPERTIES
@given(NETDSL_ISH)
def test_fmt_is_idempotent_and_keeps_comments_on_whatever_parses(text):
    document, _ = parse(SourceFile("frag.netdsl", text))
    if document is None:
        return
    once = format_document(document)
    reparsed, errors = parse(SourceFile("frag.netdsl", once))
    assert reparsed is not None, (once, errors)
    assert format_document(reparsed) == once
    assert [c.text for c in reparsed.comments] == [c.text for c in document.comments]


GENERATED = networks() | clusters()
"""Plausible networks, and clusters with a membership and pins and a network using them."""


@PROPERTIES
@given(GENERATED)
def test_generated_inputs_compile_or_are_diagnosed(text):
    check(SourceFile("gen.netdsl", text))


@PROPERTIES
@given(GENERATED)
def test_generated_inputs_keep_their_meaning_through_fmt(text):
    original = compile_sources([SourceFile("gen.netdsl", text)])
    document, _ = parse(SourceFile("gen.netdsl", text))
    formatted = compile_sources([SourceFile("gen.netdsl", format_document(document))])
    assert comparable(formatted.networks) == comparable(original.networks)
    assert comparable(formatted.clusters) == comparable(original.clusters)
    assert [d.code for d in formatted.diagnostics] == [d.code for d in original.diagnostics]
