"""compiler.datatypes behaves as the dataclasses it stands in for, where netc relies on them."""

import dataclasses
import pickle

import pytest

from compiler import datatypes
from compiler.datatypes import FrozenInstanceError, field, frozen, mutable


@frozen
class Base:
    name: str
    tags: tuple[str, ...] = ()


@frozen
class Child(Base):
    size: int = 0
    notes: list[str] = field(default_factory=list)
    cache: bytes = field(default=b"", compare=False, metadata={"portable": False})


@dataclasses.dataclass(frozen=True, slots=True)
class StdBase:
    name: str
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class StdChild(StdBase):
    size: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    cache: bytes = dataclasses.field(default=b"", compare=False)


@mutable
class Counter:
    hits: int = 0


@frozen
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")

    def __repr__(self) -> str:
        return f"<{self.value}>"


def test_fields_come_in_definition_order_bases_first():
    assert [f.name for f in datatypes.fields(Child)] == ["name", "tags", "size", "notes", "cache"]
    assert datatypes.fields(Child("a"))[4].metadata == {"portable": False}


@pytest.mark.parametrize(
    "arguments",
    [
        (("a",), {}),
        (("a", ("x",), 3), {}),
        (("a",), {"size": 2, "cache": b"c"}),
        ((), {"name": "a", "notes": ["n"]}),
    ],
)
def test_construction_repr_equality_and_hash_match_dataclasses(arguments):
    args, kwargs = arguments
    ours, theirs = Child(*args, **kwargs), StdChild(*args, **kwargs)
    assert repr(ours).replace("Child", "StdChild") == repr(theirs)
    assert (ours == Child(*args, **kwargs)) == (theirs == StdChild(*args, **kwargs))


def test_equality_and_hash_skip_fields_left_out_of_comparison():
    assert Child("a", cache=b"1") == Child("a", cache=b"2")
    assert hash(Base("a", ("t",))) == hash(Base("a", ("t",)))
    assert len({Base("a"), Base("a"), Base("b")}) == 2
    assert Child("a") != Child("b")
    assert Child("a") != Base("a")  # another class, even with the same fields


def test_a_default_factory_makes_a_fresh_value_each_time():
    first, second = Child("a"), Child("b")
    assert first.notes == [] and first.notes is not second.notes


def test_frozen_instances_refuse_changes_and_have_no_dict():
    instance = Child("a")
    with pytest.raises(FrozenInstanceError):
        instance.name = "b"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del instance.name  # type: ignore[misc]
    with pytest.raises(AttributeError):
        instance.__dict__  # noqa: B018
    assert isinstance(FrozenInstanceError(), AttributeError)


@pytest.mark.parametrize("instance", [Child("a", ("t",), 3, ["n"], b"c"), Counter(2), Checked(1)])
def test_instances_pickle_as_dataclasses_do(instance):
    copy = pickle.loads(pickle.dumps(instance))
    assert copy == instance and copy is not instance and type(copy) is type(instance)
    assert repr(copy) == repr(instance)


def test_mutable_instances_take_assignments_and_are_not_hashable():
    counter = Counter()
    counter.hits += 1
    assert counter == Counter(1)
    with pytest.raises(TypeError):
        hash(counter)


def test_post_init_runs_and_own_methods_are_kept():
    assert repr(Checked(1)) == "<1>"
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_replace_copies_with_changes_and_refuses_unknown_fields():
    original = Child("a", size=1, notes=["n"])
    changed = datatypes.replace(original, size=2)
    assert (changed.name, changed.size, changed.notes) == ("a", 2, ["n"])
    assert original.size == 1
    with pytest.raises(TypeError, match="no field colour"):
        datatypes.replace(original, colour="red")


def test_wrong_arguments_fail_as_they_would_for_a_dataclass():
    with pytest.raises(TypeError):
        Child()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Child("a", unknown=1)  # type: ignore[call-arg]


def test_a_field_without_default_after_one_with_is_refused_at_definition():
    with pytest.raises(TypeError, match="without a default follows"):

        @frozen
        class Wrong:
            first: int = 0
            second: int  # type: ignore[misc]


def test_only_data_types_have_fields():
    assert datatypes.is_datatype(Child) and datatypes.is_datatype(Child("a"))
    assert not datatypes.is_datatype(StdChild)
    with pytest.raises(TypeError, match="not a data type"):
        datatypes.fields(StdChild)


def test_compile_pending_compiles_every_init_a_later_instance_would_need():
    @frozen
    class Late:
        value: int = 1

    assert Late.__init__.__name__ == "first_init"
    datatypes.compile_pending()
    assert Late.__init__.__name__ == "__init__"
    assert Late().value == 1 and Late(2) == Late(value=2)
