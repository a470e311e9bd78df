"""JSON text read strictly: the kit's one ``json.loads`` for data (rows, tool-call arguments, ``tools``).

Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON, as floats that a chat
template then renders as non-JSON text; and JSON nested deeper than the interpreter's recursion limit
raises a bare ``RecursionError``, or, a little less deep, breaks later code that walks the row. Here both
are a ``JSONTextError`` that says where in the value the problem is, for the caller to raise as a
``RowError`` with its file, line and field. Syntax errors stay ``json.JSONDecodeError``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_DEPTH", "JSONTextError", "check", "dotted", "loads"]

MAX_DEPTH = 100
"""How deep objects and lists may nest in one value; real chat data stays under ten levels."""


class JSONTextError(ValueError):
    """JSON text that ``json`` reads but the kit refuses: a non-finite number, or nesting too deep.

    Attributes:
        reason: what is wrong and what to do, without the place.
        place: where in the parsed value, as keys and list positions (``("messages", 1, "weight")``);
            empty when it is not known.
        line: the 1-based line of the text where the problem is, when the error comes from ``loads``.
    """

    def __init__(self, reason: str, place: tuple[str | int, ...] = (), line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.place = place
        self.line = line


class _NonFinite:
    """Stands in for ``NaN`` / ``Infinity`` while parsing, so that its place can be found afterwards.

    ``made`` counts them, so that ``loads`` looks for them only when the text held one (another thread's
    count can only cause a needless look).
    """

    made = 0

    def __init__(self, name: str) -> None:
        self.name = name
        _NonFinite.made += 1


def dotted(place: tuple[str | int, ...], start: str = "") -> str:
    """A place as a field name: ``dotted(("messages", 1, "weight"))`` is ``'messages[1].weight'``.

    >>> dotted(("messages", 1, "weight")), dotted(("x",), "arguments"), dotted((), "arguments")
    ('messages[1].weight', 'arguments.x', 'arguments')
    """
    text = start
    for part in place:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def loads(text: str) -> Any:
    """``json.loads(text)``, refusing ``NaN`` / ``Infinity`` and values nested more than ``MAX_DEPTH`` deep.

    Raises:
        json.JSONDecodeError: the text is not JSON.
        JSONTextError: a non-finite number (its place given), or nesting too deep.

    >>> loads('{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> loads('{"a": [1, NaN]}')
    Traceback (most recent call last):
    ...
    trl_sft_kit.formats.json_text.JSONTextError: NaN is not a JSON number; write a finite number or null.
    """
    made = _NonFinite.made
    try:
        value = json.loads(text, parse_constant=_NonFinite)  # no module-level decoder: it cannot be pickled
    except RecursionError:
        raise JSONTextError(_too_deep(), line=_line_of_problem(text)) from None
    if _NonFinite.made != made or text.count("[") + text.count("{") > MAX_DEPTH:
        try:
            _check(value)  # finds every stand-in for NaN / Infinity, and levels too deep
        except JSONTextError as exc:
            exc.line = _line_of_problem(text)
            raise
    return value


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]|NaN|-?Infinity')


def _line_of_problem(text: str) -> int | None:
    """The line of the first ``NaN`` / ``Infinity`` or of the first level past ``MAX_DEPTH``, strings passed
    over: scanned only once a problem is known, so reading good text costs nothing."""
    depth = 0
    for token in _TOKENS.finditer(text):
        kind = token.group()[0]
        if kind in "[{":
            depth += 1
        elif kind in "]}":
            depth -= 1
        if kind in "NI-" or depth > MAX_DEPTH:
            return text.count("\n", 0, token.start()) + 1
    return None


def _too_deep() -> str:
    return (
        f"the JSON nests objects and lists more than {MAX_DEPTH} levels deep, more than any chat data needs; "
        "flatten it (or give the deep part as a string)."
    )


def check(value: Any) -> None:
    """Refuse a value already parsed (a row from Parquet, a ``datasets.Dataset`` or a list of dicts) that
    holds a non-finite float or nests more than ``MAX_DEPTH`` deep, as ``loads`` refuses such text.

    Raises:
        JSONTextError: with the place of the first such number, or of the level too deep.

    >>> check({"a": [1, 2.5]})
    >>> check({"a": [1, float("inf")]})
    Traceback (most recent call last):
    ...
    trl_sft_kit.formats.json_text.JSONTextError: Infinity is not a JSON number; write a finite number or null.
    """
    _check(value)


def _name(number: float) -> str:
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


def _check(value: Any) -> None:
    """Walk ``value`` without recursion: the first non-finite number, or a level past ``MAX_DEPTH``."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, place = stack.pop()
        if isinstance(item, _NonFinite) or (isinstance(item, float) and not math.isfinite(item)):
            name = item.name if isinstance(item, _NonFinite) else _name(item)
            raise JSONTextError(f"{name} is not a JSON number; write a finite number or null.", place)
        if isinstance(item, dict | list) and len(place) >= MAX_DEPTH:
            raise JSONTextError(_too_deep(), place)
        if isinstance(item, dict):
            stack += [(child, (*place, key)) for key, child in reversed(item.items())]
        elif isinstance(item, list):
            stack += [(child, (*place, index)) for index, child in reversed(list(enumerate(item)))]
