"""The planner's vocabulary and the runtime's handlers stay one-to-one (no kernel needed)."""

from compiler.planner.ops import Kind
from runtime.ops.registry import HANDLERS


def test_every_kind_the_planner_can_emit_has_a_handler_and_no_handler_is_orphaned():
    assert set(HANDLERS) == set(Kind)


def test_every_handler_can_ensure_remove_and_observe():
    for kind, handler in HANDLERS.items():
        for method in ("ensure", "remove", "observe"):
            assert callable(getattr(handler, method, None)), (kind, method)


def test_a_kinds_name_is_its_wire_value():
    assert [kind.name for kind in Kind] == [kind.value.upper().replace(".", "_") for kind in Kind]
