"""Which conflist a node's runtime takes first: the `NN` of `NN-name.conflist`.

containerd and CRI-O take the lexically first file of their configuration
directory as the node's default network, so the priority of each network
decides where pods go.
"""

from __future__ import annotations

from compiler import emit
from compiler.conflist_import import import_conflists
from compiler.pipeline import compile_sources
from compiler.source import SourceFile

NETWORK = """network {name} {{
    {priority}
    bridge br-{name} {{ gateway }}
    ipam {{ subnet {subnet} }}
}}
"""


def network(name: str, subnet: str, priority: int | None = None) -> str:
    return NETWORK.format(
        name=name, subnet=subnet, priority="" if priority is None else f"priority {priority}"
    )


def file_names(*sources: tuple[str, str]) -> list[str]:
    compilation = compile_sources([SourceFile(name, text) for name, text in sources])
    assert compilation.ok, compilation.diagnostics
    return sorted(emit.file_name(n) for n in compilation.networks)


def test_priority_0_is_a_priority_not_unset():
    assert file_names(("a.netdsl", network("multus", "10.1.0.0/24", 0))) == ["00-multus.conflist"]


def test_an_imported_00_conf_keeps_first_place():
    conf = (
        b'{"cniVersion": "1.0.0", "name": "multus", "plugins": [{"type": "bridge", '
        b'"bridge": "cni0", "ipam": {"type": "host-local", '
        b'"ranges": [[{"subnet": "10.1.0.0/24"}]]}}]}'
    )
    imported = import_conflists([("00-multus.conf", conf)])
    assert imported.ok
    assert file_names(("multus.netdsl", imported.text)) == ["00-multus.conflist"]


def test_default_priorities_do_not_depend_on_the_order_of_the_files():
    prod = ("prod.netdsl", network("prod", "10.1.0.0/24"))
    batch = ("batch.netdsl", network("batch", "10.2.0.0/24"))
    assert file_names(prod, batch) == file_names(batch, prod)


def warnings_of(*texts: str) -> list[str]:
    compilation = compile_sources([SourceFile(f"{i}.netdsl", t) for i, t in enumerate(texts)])
    return [d.code for d in compilation.diagnostics]


def test_a_default_network_chosen_by_name_is_a_warning_and_a_lower_priority_settles_it():
    assert warnings_of(network("prod", "10.1.0.0/24"), network("batch", "10.2.0.0/24")) == ["W004"]
    assert warnings_of(network("prod", "10.1.0.0/24", 5), network("batch", "10.2.0.0/24")) == []


def test_networks_tied_behind_the_default_are_not_a_warning():
    assert (
        warnings_of(
            network("a", "10.1.0.0/24", 0),
            network("b", "10.2.0.0/24", 20),
            network("c", "10.3.0.0/24", 20),
        )
        == []
    )
