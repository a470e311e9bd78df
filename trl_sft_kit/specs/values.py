"""The plain values specs are built from: a frozen mapping, freezing and thawing plain data, the field
validators every spec uses, and the plain-data form of a spec."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RecipeError


class FrozenMapping(Mapping[str, Any]):
    """An immutable, hashable mapping; nested lists become tuples and nested dicts FrozenMappings."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        self._data: dict[str, Any] = {str(key): freeze(value) for key, value in items}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._data.items(), key=lambda item: item[0])))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._data)


def freeze(value: Any) -> Any:
    """Return ``value`` made hashable: dicts become FrozenMapping, lists and tuples become tuples."""
    if isinstance(value, FrozenMapping):
        return value
    if isinstance(value, Mapping):
        return FrozenMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(item) for item in value)
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


def thaw(value: Any) -> Any:
    """Undo ``freeze``: FrozenMapping becomes dict, tuples become lists (for YAML, JSON and TRL)."""
    kind = type(value)
    if kind in _SCALARS:  # the exact types first: rows in memory are thawed whole for every read
        return value
    if kind is FrozenMapping:
        return {key: thaw(item) for key, item in value._data.items()}
    if kind is tuple or kind is list:
        return [thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [thaw(item) for item in value]
    if isinstance(value, frozenset):
        return sorted(thaw(item) for item in value)
    return value


def _freeze_mapping(value: Mapping[str, Any] | None) -> FrozenMapping:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value or {})


def _freeze_optional_mapping(value: Mapping[str, Any] | None) -> FrozenMapping | None:
    return None if value is None else _freeze_mapping(value)


def _one_of(*choices: Any) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            raise RecipeError(f"{attribute.name!r} must be one of {listed} (got {value!r}).")

    return check


def _number(
    *, gt: float | None = None, ge: float | None = None, le: float | None = None, lt: float | None = None
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{attribute.name!r} must be a number (got {value!r}).")
        if not math.isfinite(value):
            raise RecipeError(f"{attribute.name!r} must be a finite number (got {value!r}).")
        bounds = [("gt", gt, value > (gt or 0)), ("ge", ge, value >= (ge or 0))]
        bounds += [("le", le, value <= (le or 0)), ("lt", lt, value < (lt or 0))]
        signs = {"gt": ">", "ge": ">=", "le": "<=", "lt": "<"}
        for name, bound, holds in bounds:
            if bound is not None and not holds:
                raise RecipeError(f"{attribute.name!r} must be {signs[name]} {bound} (got {value!r}).")

    return check


def of_type(*kinds: type) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A field validator: the value is an instance of one of ``kinds`` (a bool is not taken for a number).

    Raises ``RecipeError`` with the field named, e.g. ``'r' must be an int (got 'abc')``, where
    ``attrs.validators.instance_of`` would raise a ``TypeError`` whose text is a tuple.
    """
    names = " or ".join("an int" if kind is int else f"a {kind.__name__}" for kind in kinds)

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RecipeError(f"{attribute.name!r} must be {names} (got {value!r}).")

    return check


def _optional_str(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise RecipeError(f"{attribute.name!r} must be a non-empty string or None (got {value!r}).")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _optional_count(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RecipeError(f"{attribute.name!r} must be a whole number >= 1 (got {value!r}).")


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """A spec's fields as plain data (dicts and lists), for YAML and JSON."""
    return {name: thaw(value) for name, value in attrs.asdict(spec, recurse=False).items()}


def json_key(value: Any) -> str:
    """A stable text key for plain data, used to compare and fingerprint inline rows."""
    return json.dumps(thaw(value), sort_keys=True, ensure_ascii=False, default=str)
