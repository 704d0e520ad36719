"""The planner's vocabulary and the runtime's handlers stay one-to-one (no kernel needed)."""

from compiler.planner.ops import Kind
from runtime.ops import hostports, ipam, kernel, links, nat, peers, records, shaping
from runtime.ops.base import Handler
from runtime.ops.registry import HANDLERS

MODULES = (hostports, ipam, kernel, links, nat, peers, records, shaping)


def test_every_kind_the_planner_can_emit_has_a_handler_and_no_handler_is_orphaned():
    assert set(HANDLERS) == set(Kind)
    assert sum(len(module.HANDLERS) for module in MODULES) == len(Kind), "one handler per kind"


def test_every_handler_can_ensure_remove_and_observe_itself():
    for kind, handler in HANDLERS.items():
        for method in ("ensure", "remove", "observe"):
            assert getattr(type(handler), method) is not getattr(Handler, method), (kind, method)


def test_a_kinds_name_is_its_wire_value():
    assert [kind.name for kind in Kind] == [kind.value.upper().replace(".", "_") for kind in Kind]


def test_a_kinds_parameters_and_handler_are_named_after_it():
    for kind, handler in HANDLERS.items():
        name = "".join(word.capitalize() for word in kind.name.split("_"))
        assert (handler.params.__name__, type(handler).__name__) == (
            f"{name}Params",
            f"{name}Handler",
        )
