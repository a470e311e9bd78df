"""ShareGPT: a ``conversations`` list of ``{from, value}`` turns, as FastChat and LLaMA-Factory write it.

TRL renames ``from``/``value`` to ``role``/``content`` but keeps ``human`` and ``gpt`` as role names, which
chat templates do not know; here every role becomes a standard one (``ROLE_NAMES``). A ``function_call``
turn becomes an assistant message with ``tool_calls`` (its value is JSON: one ``{"name", "arguments"}`` call
or a list of them), an ``observation`` turn a ``tool`` message. An optional ``tools`` column (a list of
schemas or a JSON string) is kept as a JSON string, and an optional ``system`` column becomes the first,
system message. A turn's ``weight`` or ``train`` (per-turn loss switches) is kept on its message. Turns
written as ``{role, content}`` are read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import json_text
from trl_sft_kit.formats.messages import (
    MALFORMED_SHARE,
    describe,
    is_list,
    normalise_messages,
    normalise_tool_calls,
    optional_str,
    tools_json,
)
from trl_sft_kit.formats.protocol import FormatMatch, FormatOptions

__all__ = ["ROLE_NAMES", "ShareGPTFormat", "sharegpt_messages"]

LOSS_KEYS = ("train", "weight")
"""Per-turn loss switches (axolotl writes ``weight``), kept on the message as in the messages format."""

ROLE_NAMES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function_response": "tool",
}
"""ShareGPT role names (and their usual synonyms) and the standard role each becomes."""


def _turn_keys(turn: Mapping[str, Any]) -> tuple[str, str]:
    return ("from", "value") if "from" in turn or "role" not in turn else ("role", "content")


@attrs.frozen
class ShareGPTFormat:
    """ShareGPT conversations; see the module docstring for roles, tool calls and the extra columns."""

    name: str = "sharegpt"
    canonical: str = "messages"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """A ``conversations`` list of ``{from, value}`` turns; weakly, any ``conversations`` field."""
        if "conversations" not in row:
            return FormatMatch.no("no 'conversations' field")
        if "chosen" in row and "rejected" in row:  # LLaMA-Factory's ShareGPT preference (DPO) layout
            return FormatMatch.no("has 'chosen' and 'rejected' beside 'conversations': preference data")
        if isinstance(row.get("label"), bool):  # LLaMA-Factory's KTO layout
            return FormatMatch.no("has a true/false 'label' beside 'conversations': KTO preference data")
        value = row["conversations"]
        if (
            is_list(value)
            and value
            and all(isinstance(t, Mapping) and ("from" in t or "role" in t) for t in value)
        ):
            return FormatMatch.yes(1.0, "'conversations' is a list of {from, value} turns")
        return FormatMatch.yes(MALFORMED_SHARE, "has a 'conversations' field, though not a list of turns")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Standard roles, ``function_call`` turns as tool calls, the ``system`` column first."""
        turns = row.get("conversations")
        if not is_list(turns) or not turns:
            raise RowError(
                f"must be a non-empty list of turns (got {describe(turns)}).", field="conversations"
            )
        messages = [_message(turn, index) for index, turn in enumerate(turns)]
        system = optional_str(row, "system")
        inserted = 0
        if system is not None and system.strip():
            if messages[0]["role"] == "system" and messages[0]["content"] != system:
                raise RowError(
                    "the row has a 'system' column and a different system turn; keep one of them.",
                    field="system",
                )
            if messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": system})
                inserted = 1
        try:
            converted: dict[str, Any] = {"messages": normalise_messages(messages)}
        except RowError as exc:
            raise RowError(exc.reason, field=_source_field(exc.field, inserted, turns)) from None
        tools = tools_json(row.get("tools"))
        if tools is not None:
            converted["tools"] = tools
        return converted


def sharegpt_messages(turns: Any, field: str) -> list[dict[str, Any]]:
    """ShareGPT turns (``{from, value}``; a single turn may stand alone) as messages with standard roles."""
    listed = [turns] if isinstance(turns, Mapping) else turns
    if not is_list(listed) or not listed:
        raise RowError(
            f"must be a ShareGPT turn or a non-empty list of them (got {describe(turns)}).", field=field
        )
    try:
        return [_message(turn, index) for index, turn in enumerate(listed)]
    except RowError as exc:
        where = exc.field or ""
        inner = where.removeprefix("conversations")
        raise RowError(exc.reason, field=field + (inner if isinstance(turns, list) else "")) from None


def _message(turn: Any, index: int) -> dict[str, Any]:
    where = f"conversations[{index}]"
    if not isinstance(turn, Mapping):
        raise RowError(f"must be a turn object with 'from' and 'value' (got {describe(turn)}).", field=where)
    role_key, value_key = _turn_keys(turn)
    source_role = turn.get(role_key)
    role = ROLE_NAMES.get(source_role) if isinstance(source_role, str) else None
    if role is None:
        raise RowError(
            f"unknown role {source_role!r}; ShareGPT roles are {', '.join(ROLE_NAMES)}.",
            field=f"{where}.{role_key}",
        )
    value = turn.get(value_key)
    if source_role != "function_call":
        message = {"role": role, "content": value}
    else:
        message = {"role": "assistant", "content": "", "tool_calls": _calls(value, f"{where}.{value_key}")}
    message.update({key: turn[key] for key in LOSS_KEYS if turn.get(key) is not None})
    return message


def _calls(value: Any, field: str) -> list[dict[str, Any]]:
    """The tool calls of a ``function_call`` turn: a JSON object or list of them, or a string holding it."""
    if isinstance(value, str):
        try:
            value = json_text.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(
                f'a function_call turn must hold a JSON call {{"name", "arguments"}} ({exc.msg} at column '
                f"{exc.colno}).",
                field=field,
            ) from None
        except json_text.JSONTextError as exc:
            raise RowError(
                f"the call's JSON text: {exc.reason}", field=json_text.dotted(exc.place, field)
            ) from None
    calls = value if is_list(value) else [value]
    if not calls:
        raise RowError("a function_call turn holds no call.", field=field)
    try:
        return normalise_tool_calls(calls, field)
    except RowError as exc:
        raise RowError(exc.reason, field=field) from None


def _source_field(field: str | None, inserted: int, turns: Any) -> str | None:
    """Name a field of the converted messages as the source names it: ``conversations[i].value``."""
    if field is None or not field.startswith("messages["):
        return "conversations" if field == "messages" else field
    index_text, _, rest = field[len("messages[") :].partition("]")
    index = int(index_text) - inserted
    if index < 0:
        return "system"
    role_key, value_key = _turn_keys(turns[index])
    head, dot, tail = rest.lstrip(".").partition(".")
    if not head:
        return f"conversations[{index}]"
    head = {"role": role_key, "content": value_key, "tool_calls": value_key}.get(head, head)
    if head == value_key:  # a tool call's own fields are inside the value's JSON
        tail, dot = "", ""
    return f"conversations[{index}].{head}{dot}{tail}"
