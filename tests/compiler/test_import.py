"""`netc import`: conflists to .netdsl and back to the same JSON value.

Round trips over every golden reference conflist netc builds and the two
conflists of the Kubernetes 1.28 "Network Plugins" page; golden .netdsl and
findings for hand-written conflists in the shapes podman, containerd, CRI-O
and the Kubernetes guides write (tests/golden/import/CASE/); a property test
for plugin options of any shape.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import emit
from compiler.conflist_import import Imported, Level, import_conflists
from compiler.diagnostics import render_text
from compiler.fmt import format_document
from compiler.pipeline import compile_sources
from compiler.source import SourceFile
from compiler.syntax import parse
from tests.compiler.test_build_golden import calico
from tests.conftest import TESTS
from tests.support import ROOT, comparable, compile_example

IMPORT = TESTS / "golden" / "import"
CASES = sorted(p.name for p in IMPORT.iterdir() if p.is_dir())
INPUT_SUFFIXES = (".conf", ".conflist", ".json")
REFERENCE_GOLDEN = sorted(
    str(p.relative_to(ROOT)) for p in (TESTS / "golden" / "build").glob("*/reference-*/*.conflist")
)


def inputs_of(case: str) -> list[tuple[str, bytes]]:
    files = sorted(p for p in (IMPORT / case).iterdir() if p.suffix in INPUT_SUFFIXES)
    return [(f"{case}/{p.name}", p.read_bytes()) for p in files]


def rebuilt(result: Imported) -> dict[str, dict]:
    """The conflists `netc build --target reference` makes of the imported text, by name."""
    compilation = compile_sources([SourceFile("<stdout>", result.text)])
    assert compilation.ok, render_text(compilation.diagnostics, {})
    return {n.name: emit.conflist(n, "reference") for n in compilation.networks}


def as_conflist(document: dict) -> dict:
    """A single-plugin .conf as libcni turns it into a list (cniVersion and name on top)."""
    if "plugins" in document:
        return document
    top = {k: document[k] for k in ("cniVersion", "name") if k in document}
    return {**top, "plugins": [{k: v for k, v in document.items() if k not in top}]}


def findings_text(result: Imported) -> str:
    lines = "".join(f"{finding}\n" for finding in result.findings)
    return lines + render_text(
        result.diagnostics, {"<stdout>": SourceFile("<stdout>", result.text)}
    )


@pytest.mark.parametrize("path", REFERENCE_GOLDEN)
def test_every_golden_reference_conflist_comes_back_the_same(path):
    data = (ROOT / path).read_bytes()
    result = import_conflists([(path, data)])
    assert result.findings == (), findings_text(result)
    (built,) = rebuilt(result).values()
    assert built == json.loads(data)


@pytest.mark.parametrize(
    ("example", "last_plugin"),
    [
        ("k8s-calico-portmap", {"type": "portmap", "capabilities": {"portMappings": True}}),
        ("k8s-calico-bandwidth", {"type": "bandwidth", "capabilities": {"bandwidth": True}}),
    ],
)
def test_the_kubernetes_page_conflists_import_as_the_examples_say(example, last_plugin):
    page = calico(last_plugin)
    result = import_conflists([("10-k8s-pod-network.conflist", json.dumps(page).encode())])
    assert result.findings == (), findings_text(result)
    assert rebuilt(result) == {"k8s-pod-network": page}
    imported = compile_sources([SourceFile("<stdout>", result.text)])
    assert comparable(imported.networks) == comparable(compile_example(example)[0].networks)


@pytest.mark.parametrize("case", CASES)
def test_import_matches_golden(case, golden):
    result = import_conflists(inputs_of(case))
    golden.check(f"golden/import/{case}/imported.netdsl", result.text)
    golden.check(f"golden/import/{case}/findings.txt", findings_text(result))


@pytest.mark.parametrize("case", CASES)
def test_the_imported_text_is_formatted_and_compiles(case):
    result = import_conflists(inputs_of(case))
    document, problems = parse(SourceFile("x.netdsl", result.text))
    assert not problems and format_document(document) == result.text
    assert result.ok, findings_text(result)


@pytest.mark.parametrize("case", CASES)
def test_what_no_finding_names_comes_back_the_same(case):
    """A file without findings on JSON paths builds back to its JSON value exactly.

    Findings on paths -- a default left out, a key dropped -- are checked by
    the safety net instead (no case may need it: no "built back" finding).
    """
    result = import_conflists(inputs_of(case))
    assert not any(f.message.startswith("built back") for f in result.findings)
    built = rebuilt(result)
    exact = [
        (name, as_conflist(json.loads(data)))
        for name, data in inputs_of(case)
        if not any(f.file == name and f.path is not None for f in result.findings)
    ]
    for name, original in exact:
        if original.get("name") in result.networks and not any(
            f.file == name and f.level is Level.WARNING for f in result.findings
        ):
            assert built[original["name"]] == original, name
    if not exact:
        pytest.skip("every file of this case has findings on JSON paths")


@pytest.mark.parametrize("name", ["10-vlan.conflist", "20-trunk.conf", "30-ordered.conflist"])
def test_values_the_typed_statements_cannot_hold_come_back_exactly(name):
    """Bridge `vlan`, `ipMasqBackend`, portmap `markMasqBit`, the
    conflist's `disableCheck`, plugins out of netc's order: kept, without a warning."""
    data = (IMPORT / "stock-extras" / name).read_bytes()
    result = import_conflists([(name, data)])
    assert not [f for f in result.findings if f.level is not Level.NOTE], findings_text(result)
    (built,) = rebuilt(result).values()
    assert built == as_conflist(json.loads(data))


def test_the_typed_statements_stay_where_they_hold_everything():
    """Only what cannot be typed goes verbatim: a plain bridge stays `bridge`, `hostport`."""
    conflist = json.loads((IMPORT / "stock-extras" / "10-vlan.conflist").read_bytes())
    del conflist["plugins"][0]["vlan"], conflist["plugins"][0]["ipMasqBackend"]
    result = import_conflists([("10-vlan.conflist", json.dumps(conflist).encode())])
    assert "bridge br100 {" in result.text and "hostport" not in result.text
    assert "chain portmap {" in result.text and "plugin bridge" not in result.text
    assert rebuilt(result) == {"vlan100": conflist}


def test_a_difference_no_finding_explains_becomes_a_warning():
    """The safety net: the built JSON is compared with the input, whatever the converter said."""
    from compiler import conflist_import

    report = conflist_import.Report("x.conflist")
    source = conflist_import._Source(
        "x.conflist",
        report,
        {"cniVersion": "1.0.0", "name": "x"},
        [({"type": "ptp", "mtu": 1500}, ("plugins", 0))],
    )
    network = conflist_import._Converted("x", source, conflist_import.Node("network x"), [0])
    built = {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "ptp", "mtu": 1400}]}
    conflist_import._compare(network, built)
    assert [str(f) for f in report.findings] == [
        "x.conflist: $.plugins[0].mtu: warning: built back as 1400 instead of 1500"
    ]


def test_a_file_that_is_no_conflist_is_an_error_and_nothing_is_written():
    result = import_conflists(
        [
            ("a.conflist", b'{"name": "a", "plugins": [{"type": "ptp"}]}'),
            ("b.conflist", b"[1, 2]"),
            ("c.conflist", b"{oops"),
        ]
    )
    assert not result.ok and result.text == ""
    assert [str(f) for f in result.findings if f.level is Level.ERROR] == [
        "b.conflist: $: error: expected a JSON object, found [1, 2]",
        "c.conflist: error: not JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    ]


def test_networks_that_break_netc_rules_are_written_with_the_diagnostics():
    """Two conflists may share a bridge; netc refuses it (E105) but still gives the text."""

    def network(name: str, subnet: str) -> bytes:
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": name,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]},
                    }
                ],
            }
        ).encode()

    result = import_conflists(
        [
            ("10-a.conflist", network("a", "10.1.0.0/24")),
            ("20-b.conflist", network("b", "10.2.0.0/24")),
        ],
        "node.netdsl",
    )
    assert not result.ok and "network b {" in result.text
    assert [d.code for d in result.diagnostics] == ["E105"]
    assert result.diagnostics[0].span.file == "node.netdsl"


ANY_TEXT = st.characters(blacklist_categories=())
"""Every code point, lone surrogates and control characters included."""
OPTION_KEYS = st.text(ANY_TEXT, min_size=1, max_size=8).filter(
    lambda k: (
        k not in ("name", "cniVersion", "runtimeConfig", "args", "prevResult", "type")
        and not k.startswith("cni.dev/")
    )
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(ANY_TEXT, max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(ANY_TEXT, max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    main=st.dictionaries(OPTION_KEYS, JSON_VALUES, max_size=5),
    chained=st.dictionaries(OPTION_KEYS, JSON_VALUES, max_size=5),
)
def test_plugin_options_of_any_shape_come_back_the_same(main, chained):
    conflist = {
        "cniVersion": "1.0.0",
        "name": "any",
        "plugins": [{"type": "calico", **main}, {"type": "sbr", **chained}],
    }
    result = import_conflists([("10-any.conflist", json.dumps(conflist).encode())])
    assert result.findings == (), findings_text(result)
    assert rebuilt(result) == {"any": conflist}


def _maybe(strategy):
    return st.one_of(strategy, JSON_VALUES)


ADDRESSES = st.sampled_from(
    [
        "10.1.0.0/24",
        "10.1.0.7/24",
        "10.1.0.1",
        "10.1.0.300",
        "fd00::/64",
        "fd00::1",
        "0.0.0.0/0",
        "::/0",
        "10.2.0.0/31",
        "x",
        "",
        "10.1.0.255",
    ]
)
RANGE = st.fixed_dictionaries(
    {},
    optional={
        "subnet": _maybe(ADDRESSES),
        "rangeStart": _maybe(ADDRESSES),
        "rangeEnd": _maybe(ADDRESSES),
        "gateway": _maybe(ADDRESSES),
        "extra": JSON_VALUES,
    },
)
IPAM = st.fixed_dictionaries(
    {"type": st.just("host-local")},
    optional={
        "ranges": _maybe(st.lists(_maybe(st.lists(_maybe(RANGE), max_size=3)), max_size=3)),
        "routes": _maybe(
            st.lists(
                _maybe(
                    st.fixed_dictionaries(
                        {}, optional={"dst": _maybe(ADDRESSES), "gw": _maybe(ADDRESSES)}
                    )
                ),
                max_size=3,
            )
        ),
        "subnet": _maybe(ADDRESSES),
        "dataDir": _maybe(st.sampled_from(["/x", "y"])),
        "resolvConf": JSON_VALUES,
    },
)
BRIDGE = st.fixed_dictionaries(
    {"type": st.just("bridge"), "ipam": IPAM},
    optional={
        "bridge": _maybe(st.sampled_from(["cni0", "a-name-far-too-long", "br:0"])),
        "mtu": _maybe(st.integers(-1, 70000)),
        "isGateway": JSON_VALUES,
        "isDefaultGateway": JSON_VALUES,
        "ipMasq": JSON_VALUES,
        "hairpinMode": JSON_VALUES,
        "capabilities": _maybe(st.fixed_dictionaries({}, optional={"ips": JSON_VALUES})),
        "dns": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "nameservers": _maybe(st.lists(_maybe(ADDRESSES), max_size=2)),
                    "search": JSON_VALUES,
                    "domain": JSON_VALUES,
                },
            )
        ),
        "vlan": JSON_VALUES,
    },
)
CHAINED = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("portmap")}, optional={"capabilities": JSON_VALUES, "snat": JSON_VALUES}
    ),
    st.fixed_dictionaries(
        {"type": st.just("bandwidth")},
        optional={
            "capabilities": _maybe(st.fixed_dictionaries({}, optional={"bandwidth": JSON_VALUES})),
            "ingressRate": _maybe(st.integers(-1, 10**16)),
            "ingressBurst": _maybe(st.integers(-1, 2**36)),
            "egressRate": JSON_VALUES,
        },
    ),
    st.fixed_dictionaries(
        {"type": _maybe(st.sampled_from(["firewall", "a/b", "tuning"]))},
        optional={"name": JSON_VALUES, "args": JSON_VALUES},
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    main=BRIDGE,
    chained=st.lists(CHAINED, max_size=4),
    top=st.fixed_dictionaries({}, optional={"cniVersion": JSON_VALUES, "disableGC": JSON_VALUES}),
)
def test_any_values_of_the_stock_keys_are_explained_by_the_converter(main, chained, top):
    """Whatever the values of the keys netc reads, the converter itself names each change.

    No crash, and the safety net never has to step in ("built back as ...").
    """
    conflist = {"name": "fuzz", **top, "plugins": [main, *chained]}
    result = import_conflists([("10-fuzz.conflist", json.dumps(conflist).encode())])
    assert not any(f.message.startswith("built back") for f in result.findings), findings_text(
        result
    )


CONFLIST_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "name": _maybe(st.sampled_from(["pods", "-bad"])),
        "type": JSON_VALUES,
        "plugins": _maybe(
            st.lists(
                _maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "type": _maybe(
                                st.sampled_from(["bridge", "portmap", "bandwidth", "calico"])
                            ),
                            "ipam": JSON_VALUES,
                        },
                    )
                ),
                max_size=4,
            )
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(document=st.one_of(JSON_VALUES, CONFLIST_SHAPED))
def test_any_json_gives_a_netdsl_or_an_error_saying_why(document):
    result = import_conflists([("x.conflist", json.dumps(document).encode())])
    assert result.text or any(f.level is Level.ERROR for f in result.findings)


def test_flannels_conflist_comes_back_the_same_marked_for_the_migration_guide():
    """kube-flannel.yml's conflist builds back to itself; the comment above its
    plugin points to the guide, whose first block is this very import."""
    data = (IMPORT / "flannel" / "10-flannel.conflist").read_bytes()
    result = import_conflists([("10-flannel.conflist", data)])
    assert rebuilt(result) == {"cbr0": json.loads(data)}
    hint = "# flannel's plugin; for netc to run this network, see docs/migrating-from-flannel.md"
    assert f"    {hint}\n    plugin flannel {{\n" in result.text
    guide = (ROOT / "docs" / "migrating-from-flannel.md").read_text()
    assert f"```netdsl\n{result.text}```" in guide
