"""Junk: arbitrary JSON, rows one edit away from a format (``near_misses``), and the strings in a value."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from trl_sft_kit.testing.strategies.rows import rows
from trl_sft_kit.testing.strategies.text import _CHARS, _SCALARS
from trl_sft_kit.testing.strategies.values import FIELD_NAMES

# ---------------------------------------------------------------------------------------------- junk


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value: scalars, strings, and lists and objects of them, keyed often by format field names."""
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(_CHARS, max_size=8))
    scalars = st.one_of(
        _SCALARS, st.text(_CHARS, max_size=12), st.sampled_from(["", " ", "user", "gpt", "assistant"])
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


@st.composite
def near_misses(draw: st.DrawFn, format: str | None = None) -> dict[str, Any]:
    """A generated row of a built-in format with one value somewhere replaced by junk, or removed."""
    row = copy.deepcopy(draw(rows(format)))
    paths = list(_paths(row))
    path = draw(st.sampled_from(paths))
    parent: Any = row
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values())
    return row


def junk() -> st.SearchStrategy[Any]:
    """Rows a dataset should not have: any JSON value, objects of format fields with junk, near misses."""
    return st.one_of(
        json_values(),
        st.dictionaries(st.sampled_from(FIELD_NAMES), json_values(), min_size=1, max_size=4),
        near_misses(),
    )


def junk_datasets() -> st.SearchStrategy[list[Any]]:
    """Whole datasets of junk: one to six rows, good ones among them now and then."""
    return st.lists(st.one_of(junk(), junk(), rows()), min_size=1, max_size=6)


def strings_in(value: Any) -> Iterator[str]:
    """Every string value inside a JSON value (keys left out), to check that conversion loses no text."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)
