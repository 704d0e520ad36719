"""Data types: classes defined by their fields, as dataclasses are, but cheap to define.

netc-cni is a new process on every pod's ADD and DEL, and it imports some
fifty such classes (the IR, the plan, netlink messages, records).  CPython
3.11's `dataclasses` compiles half a dozen methods per class when the class
is defined and imports `inspect` on the way, more than a cold call's whole
work (docs/benchmarks.md, the start-up tricks).  Here the methods are shared functions driven by
the class's field list, and the one method that is compiled per class,
`__init__` (speed matters there: the compiler makes many objects), is
compiled the first time an instance is made, so a class the call never
instantiates costs nothing.

What netc uses of dataclasses, with the same meaning: fields in definition
order, a base class's first; defaults, and `field()` with a
`default_factory`, `compare=False` or `metadata`; `__post_init__`;
`__slots__`; `repr`; equality over the compared fields, and for `frozen`
classes immutability and a hash over the same fields; pickling.  Methods a class
defines itself are kept.  mypy checks these classes as dataclasses
(`dataclass_transform`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    # re-exported (`as`): compiler.planner.ops marks its own decorator with it
    from typing_extensions import dataclass_transform as dataclass_transform  # noqa: PLC0414
else:

    def dataclass_transform(**_options: object) -> Callable[[Any], Any]:
        """Only type checkers read it."""
        return lambda decorator: decorator


T = TypeVar("T")


class _Missing:
    """No default: the field must be given."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """An attempt to change a field of a frozen instance."""


class Field:
    """One field of a data type, as `fields()` lists them."""

    __slots__ = ("compare", "default", "default_factory", "metadata", "name")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        compare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field takes a default or a default_factory, not both")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.metadata: Mapping[str, Any] = metadata or {}

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    compare: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """A field with a default made by `default_factory`, left out of equality, or annotated."""
    return Field(default, default_factory, compare, metadata)


class _Layout:
    """What the shared methods need of a class: its fields, and how to compare them."""

    __slots__ = ("_values", "fields", "key", "names")

    def __init__(self, fields: tuple[Field, ...]) -> None:
        self.fields = fields
        self.names = tuple(f.name for f in fields)
        self._values: Callable[[Any], Any] = attrgetter(*self.names) if fields else _nothing
        compared = [f.name for f in fields if f.compare]
        self.key: Callable[[Any], Any] = attrgetter(*compared) if compared else _nothing

    def values(self, instance: object) -> tuple[Any, ...]:
        """The instance's field values in order (attrgetter gives one field's bare)."""
        values = self._values(instance)
        return values if len(self.names) != 1 else (values,)


def _nothing(_instance: object) -> tuple[()]:
    return ()


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: type[T]) -> type[T]:
    """An immutable, hashable data type with `__slots__`."""
    return _define(cls, is_frozen=True)


@dataclass_transform(field_specifiers=(field, Field))
def mutable(cls: type[T]) -> type[T]:
    """A data type with `__slots__` whose fields may be assigned (not hashable)."""
    return _define(cls, is_frozen=False)


def fields(kind: object) -> tuple[Field, ...]:
    """The fields of a data type or of one of its instances, in order."""
    return _layout(kind).fields


def compile_pending() -> None:
    """Compile now the `__init__` of every data type defined so far.

    A long-lived process that forks a child per call (the warm server) does it
    once, so that no child compiles the same methods again.
    """
    while _UNCOMPILED:
        cls, is_frozen = _UNCOMPILED.popitem()
        type.__setattr__(cls, "__init__", _compile_init(cls, is_frozen))


def is_datatype(value: object) -> bool:
    """Whether `value` is a data type or an instance of one."""
    return isinstance(getattr(value, "__datatype__", None), _Layout)


def replace(instance: T, /, **changes: Any) -> T:
    """A copy of `instance` with `changes` to some of its fields."""
    layout = _layout(instance)
    given = dict(zip(layout.names, layout.values(instance), strict=True))
    unknown = changes.keys() - given.keys()
    if unknown:
        raise TypeError(f"{type(instance).__name__} has no field {', '.join(sorted(unknown))}")
    given.update(changes)
    return type(instance)(**given)


def _define(cls: type[T], *, is_frozen: bool) -> type[T]:
    layout = _Layout(_collect_fields(cls))
    inherited = {name for base in cls.__mro__[1:] for name in getattr(base, "__slots__", ())}
    names = [f.name for f in layout.fields]
    namespace = {
        key: value
        for key, value in vars(cls).items()
        if key not in names and key not in ("__dict__", "__weakref__")
    }
    namespace["__slots__"] = tuple(name for name in names if name not in inherited)
    namespace["__datatype__"] = layout
    namespace.setdefault("__repr__", _Shared.__repr__)
    namespace.setdefault("__eq__", _Shared.__eq__)
    if namespace.get("__hash__") is None:  # None too when the class defines only __eq__
        namespace["__hash__"] = _Shared.__hash__ if is_frozen else None
    if is_frozen:
        namespace |= {"__setattr__": _Shared.__setattr__, "__delattr__": _Shared.__delattr__}
        namespace.setdefault("__setstate__", _Shared.__setstate__)
    metaclass: type = type(cls)
    defined: type[T] = metaclass(cls.__name__, cls.__bases__, namespace)
    defined.__qualname__ = cls.__qualname__
    if "__init__" not in namespace:
        type.__setattr__(defined, "__init__", _first_init(defined, is_frozen))
        _UNCOMPILED[defined] = is_frozen
    return defined


def _collect_fields(cls: type) -> tuple[Field, ...]:
    """Fields of the bases that are data types, then the class's own annotated names."""
    collected: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        if is_datatype(base):
            collected |= {f.name: f for f in fields(base)}
    for name, annotation in vars(cls).get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        given = vars(cls).get(name, MISSING)
        declared = given if isinstance(given, Field) else Field(default=given)
        declared.name = name
        collected[name] = declared
    _check_order(cls, collected.values())
    return tuple(collected.values())


def _check_order(cls: type, declared: Any) -> None:
    seen_default = False
    for f in declared:
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if seen_default and not has_default:
            raise TypeError(
                f"{cls.__name__}: field {f.name} without a default follows one with a default"
            )
        seen_default = seen_default or has_default


_UNCOMPILED: dict[type, bool] = {}
"""Data types whose `__init__` is still `_first_init`'s (whether each is frozen)."""


def _first_init(cls: type, is_frozen: bool) -> Callable[..., None]:
    def first_init(self: Any, *args: Any, **kwargs: Any) -> None:
        compiled = _compile_init(cls, is_frozen)
        type.__setattr__(cls, "__init__", compiled)
        _UNCOMPILED.pop(cls, None)
        compiled(self, *args, **kwargs)

    return first_init


def _compile_init(cls: type, is_frozen: bool) -> Callable[..., None]:
    """`__init__` as a dataclass would write it: one assignment per field."""
    scope: dict[str, Any] = {"MISSING": MISSING, "setter": object.__setattr__}
    parameters, body = ["self"], []
    for f in fields(cls):
        value = f.name
        if f.default_factory is not MISSING:
            scope[f"factory_{f.name}"] = f.default_factory
            parameters.append(f"{f.name}=MISSING")
            value = f"factory_{f.name}() if {f.name} is MISSING else {f.name}"
        elif f.default is not MISSING:
            scope[f"default_{f.name}"] = f.default
            parameters.append(f"{f.name}=default_{f.name}")
        else:
            parameters.append(f.name)
        body.append(
            f"setter(self, {f.name!r}, {value})" if is_frozen else f"self.{f.name} = {value}"
        )
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__({', '.join(parameters)}):\n " + "\n ".join(body or ["pass"]) + "\n"
    exec(compile(source, f"<{cls.__qualname__}.__init__>", "exec"), scope)
    compiled: Callable[..., None] = scope["__init__"]
    compiled.__qualname__ = f"{cls.__qualname__}.__init__"
    return compiled


def _layout(kind: object) -> _Layout:
    layout = getattr(kind, "__datatype__", None)
    if not isinstance(layout, _Layout):
        raise TypeError(f"{kind!r} is not a data type")
    return layout


class _Shared:
    """The methods data types share: copied into each class, which keeps its own bases."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = _layout(self).key
        return bool(key(self) == key(other))

    def __hash__(self) -> int:
        return hash(_layout(self).key(self))

    def __setattr__(self, name: str, _value: object) -> None:
        raise FrozenInstanceError(
            f"cannot assign to field {name!r} of a frozen {type(self).__name__}"
        )

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """Unpickling a frozen instance, as a frozen dataclass unpickles: past its own refusal."""
        for name, value in state[1].items():
            object.__setattr__(self, name, value)
