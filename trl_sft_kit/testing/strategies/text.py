"""Strings of every kind (unicode, blank, long), message contents, tool calls and tool schemas."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------------- text

_CHARS = st.characters(codec="utf-8", exclude_categories=["Cs"])


def texts(*, long: bool = True) -> st.SearchStrategy[str]:
    """Unicode strings with more than whitespace in them; now and then a long one (up to 1,000 chars)."""
    short = st.text(_CHARS, min_size=1, max_size=24)
    strategy = st.one_of(short, short, short, st.text(_CHARS, min_size=200, max_size=1000)) if long else short
    return strategy.filter(lambda text: text.strip() != "")


def _blank() -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", "\n"])


_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)


@st.composite
def contents(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A message content, a string or a list of text parts, with the strings that must survive."""
    parts = draw(st.lists(texts(), min_size=1, max_size=3))
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0], parts
    typed = [draw(st.sampled_from(["typed", "untyped", "bare"])) for _ in parts]
    content = [
        {"type": "text", "text": part} if kind == "typed" else {"text": part} if kind == "untyped" else part
        for part, kind in zip(parts, typed, strict=True)
    ]
    return content, parts


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)


@st.composite
def tool_calls(draw: st.DrawFn, *, flat: bool | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One to three tool calls, with the strings that must survive (names and string argument values).

    Calls are OpenAI's ``{"type": "function", "function": {"name", "arguments"}}`` (``flat=False``), flat
    ``{"name", "arguments"}`` as ShareGPT's ``function_call`` turns hold them (``flat=True``), or now and
    then flat (``None``); arguments are an object or a JSON string.
    """
    calls = []
    strings: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(_NAMES)
        arguments = draw(st.dictionaries(_NAMES, st.one_of(texts(long=False), _SCALARS), max_size=3))
        strings += [name, *(value for value in arguments.values() if isinstance(value, str))]
        encoded: Any = (
            json.dumps(arguments, ensure_ascii=draw(st.booleans())) if draw(st.booleans()) else arguments
        )
        if flat or (flat is None and draw(st.integers(0, 3)) == 0):
            calls.append({"name": name, "arguments": encoded})
            continue
        call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": encoded}}
        if draw(st.booleans()):
            call["id"] = draw(st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True))
        calls.append(call)
    return calls, strings


def tool_schemas() -> st.SearchStrategy[list[dict[str, Any]]]:
    """A non-empty list of function tool schemas, as a ``tools`` column holds them."""
    schema = st.builds(
        lambda name, description, params: {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {"type": "object", "properties": {p: {"type": "string"} for p in params}},
            },
        },
        _NAMES,
        texts(long=False),
        st.lists(_NAMES, max_size=3, unique=True),
    )
    return st.lists(schema, min_size=1, max_size=3)
