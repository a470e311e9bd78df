"""Chat messages: the OpenAI ``messages`` format and the checks every conversational row goes through.

A canonical message is ``{"role", "content"}`` with ``content`` a string, plus, when the source has them:

- ``tool_calls``: ``[{"type": "function", "function": {"name": str, "arguments": dict}}]`` (and ``"id"``).
  ``arguments`` is always a JSON object here, as chat templates expect (Qwen's writes ``arguments | tojson``);
  OpenAI's JSON-string arguments are parsed. A flat ``{"name", "arguments"}`` call is accepted too.
- ``tool_call_id`` and ``name`` (strings): which call a ``tool`` message answers, and the tool's name.
- ``reasoning_content`` and ``thinking`` (strings): the reasoning some templates (Qwen 3, DeepSeek R1) render.
- ``train`` (bool) and ``weight`` (number): per-message loss switches (see ``trl_sft_kit.data.masks``).

Other per-message keys (``id``, timestamps, ...) are left out: templates do not read them. Content given as a
list of typed parts (``[{"type": "text", "text": ...}]``) is joined into one string with nothing between
the parts, as OpenAI's API joins them; parts of any other type (images, audio) are refused.

A ``tools`` column (tool schemas) is kept as a JSON string, the form TRL decodes before rendering; a list
of schemas is encoded, a string is checked to hold a JSON list and kept as it is.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import json_text
from trl_sft_kit.formats.protocol import FormatMatch, FormatOptions

__all__ = [
    "CHAT_ROLES",
    "MALFORMED_SHARE",
    "MESSAGE_KEYS",
    "MessagesFormat",
    "describe",
    "non_empty_str",
    "normalise_messages",
    "normalise_tool_calls",
    "prompt_completion_row",
    "text_of",
    "tools_json",
]

CHAT_ROLES = ("system", "user", "assistant", "tool")
"""The roles of canonical messages."""

MESSAGE_KEYS = (
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "name",
    "reasoning_content",
    "thinking",
    "train",
    "weight",
)
"""The keys a canonical message may have; others are left out (see the module docstring)."""

_STRING_KEYS = ("tool_call_id", "name", "reasoning_content", "thinking")

# A row that has a format's own field (``messages``, the text field) with a wrong value still matches that
# format, weakly (a fifth of its usual score), so conversion reports what is wrong as a ``RowError``, which
# ``on_bad_rows="skip"`` can skip, instead of detection failing for the whole dataset.
MALFORMED_SHARE = 0.2


def describe(value: Any) -> str:
    """A short description of a bad value for error messages: its type and the start of its JSON."""
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def non_empty_str(row: Mapping[str, Any], key: str) -> str:
    """``row[key]`` when it is a string with more than whitespace in it; a ``RowError`` otherwise."""
    value = row.get(key)
    if value is None:
        raise RowError("is null or missing.", field=key)
    if not isinstance(value, str):
        raise RowError(f"must be a string (got {describe(value)}).", field=key)
    if not value.strip():
        raise RowError("is empty.", field=key)
    return value


def optional_str(row: Mapping[str, Any], key: str) -> str | None:
    """``row[key]`` as a string, or ``None`` when it is missing, null or empty."""
    value = row.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RowError(f"must be a string (got {describe(value)}).", field=key)
    return value


def is_list(value: Any) -> bool:
    """A JSON array (a list or tuple, not a string)."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def text_of(content: Any, field: str) -> str:
    """A message's content as one string; typed text parts are joined with nothing between them."""
    if isinstance(content, str):
        return content
    if is_list(content):
        texts = []
        for index, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif _is_text_part(part):
                texts.append(part["text"])
            else:
                raise RowError(
                    f"content part {index} is {describe(part)}; only text parts "
                    "({'type': 'text', 'text': ...}) can be trained on here.",
                    field=field,
                )
        return "".join(texts)
    raise RowError(
        f"content must be a string or a list of text parts (got {describe(content)}).", field=field
    )


def _is_text_part(part: Any) -> bool:
    if not isinstance(part, Mapping):
        return False
    return part.get("type", "text") == "text" and isinstance(part.get("text"), str)


def normalise_tool_calls(value: Any, field: str) -> list[dict[str, Any]]:
    """Tool calls as ``[{"type": "function", "function": {"name", "arguments": {...}}}]`` (``id`` kept).

    Accepts OpenAI's calls (``arguments`` a JSON string) and flat ``{"name", "arguments"}`` calls; an empty
    or missing ``arguments`` is ``{}``.

    Raises:
        RowError: not a list of call objects, a call without a name, a non-function call, or arguments that
            are not a JSON object.
    """
    if value is None:
        return []
    if not is_list(value):
        raise RowError(f"must be a list of tool calls (got {describe(value)}).", field=field)
    calls = []
    for index, call in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(call, Mapping):
            raise RowError(f"must be a tool call object (got {describe(call)}).", field=where)
        kind = call.get("type", "function")
        if kind != "function":
            raise RowError(f"only function calls can be trained on (got type {describe(kind)}).", field=where)
        function = call.get("function", call)
        if not isinstance(function, Mapping):
            raise RowError(
                f"must be an object with name and arguments (got {describe(function)}).", field=where
            )
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RowError(
                f"a tool call needs a function name (got {describe(name)}).", field=f"{where}.name"
            )
        normalised: dict[str, Any] = {}
        if call.get("id") is not None:
            if not isinstance(call["id"], str):
                raise RowError(f"must be a string (got {describe(call['id'])}).", field=f"{where}.id")
            normalised["id"] = call["id"]
        arguments = _arguments(function.get("arguments"), f"{where}.arguments")
        normalised.update(type="function", function={"name": name, "arguments": arguments})
        calls.append(normalised)
    return calls


def _arguments(value: Any, field: str) -> dict[str, Any]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json_text.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(
                f"the arguments are not valid JSON ({exc.msg} at column {exc.colno}); they must be a JSON "
                "object, or a string holding one.",
                field=field,
            ) from None
        except json_text.JSONTextError as exc:
            raise RowError(
                f"the arguments' JSON text: {exc.reason}", field=json_text.dotted(exc.place, field)
            ) from None
    if not isinstance(value, Mapping):
        raise RowError(f"the arguments must be a JSON object (got {describe(value)}).", field=field)
    arguments = copy.deepcopy(dict(value))
    try:  # arguments read from Parquet or given in memory: no float NaN / Infinity either
        json_text.check(arguments)
    except json_text.JSONTextError as exc:
        raise RowError(exc.reason, field=json_text.dotted(exc.place, field)) from None
    return arguments


def tools_json(value: Any, field: str = "tools") -> str | None:
    """A ``tools`` column as a JSON string (what TRL decodes), or ``None`` when it is empty.

    Raises:
        RowError: a string that is not JSON, or anything that is not a list of tool schema objects.
    """
    if value is None or value == "" or (is_list(value) and not value):
        return None
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json_text.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(
                f"is not valid JSON ({exc.msg} at column {exc.colno}); give a list of tool schemas, or a "
                "string holding one.",
                field=field,
            ) from None
        except json_text.JSONTextError as exc:
            raise RowError(f"the JSON text: {exc.reason}", field=json_text.dotted(exc.place, field)) from None
        if parsed == []:
            return None
    if not is_list(parsed) or not all(isinstance(tool, Mapping) for tool in parsed):
        raise RowError(f"must be a list of tool schema objects (got {describe(parsed)}).", field=field)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(list(parsed), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or Infinity: JSON has no such number
        raise RowError(
            "holds NaN or Infinity, which JSON cannot hold; write finite numbers.", field=field
        ) from None


def normalise_messages(
    messages: Any, field: str = "messages", *, need_assistant: bool = True
) -> list[dict[str, Any]]:
    """Check a conversation and return it as canonical messages (see the module docstring).

    Raises:
        RowError: not a list of messages, an unknown role, non-text or empty content, a system message
            after the first, bad tool calls, or (when ``need_assistant``) no assistant turn.
    """
    if not is_list(messages) or not messages:
        raise RowError(f"must be a non-empty list of messages (got {describe(messages)}).", field=field)
    out = [_message(message, f"{field}[{index}]", index) for index, message in enumerate(messages)]
    if need_assistant and not any(message["role"] == "assistant" for message in out):
        raise RowError(
            "the conversation has no assistant message, so there is nothing to learn.", field=field
        )
    return out


def _unknown_role(role: Any, where: str) -> str:
    """Why a role is refused; ShareGPT's ``human`` / ``gpt`` get the way to read them."""
    from trl_sft_kit.formats.sharegpt import ROLE_NAMES

    known = f"roles must be one of {', '.join(CHAT_ROLES)}"
    if isinstance(role, str) and role in ROLE_NAMES:
        column = where.split("[", 1)[0]
        return (
            f"role {role!r} looks like a ShareGPT role ({role!r} stands for {ROLE_NAMES[role]!r}), but "
            f"{known}. Rename the roles to {ROLE_NAMES[role]!r} and the like, or read the rows as ShareGPT: "
            f".dataset(..., columns={{{column!r}: 'conversations'}}, format='sharegpt') (which maps "
            "human/gpt/observation/function_call onto the standard roles)."
        )
    return f"unknown role {role!r}; {known}."


def _message(message: Any, where: str, index: int) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise RowError(
            f"must be a message object with role and content (got {describe(message)}).", field=where
        )
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise RowError(_unknown_role(role, where), field=f"{where}.role")
    if role == "system" and index != 0:
        raise RowError("a system message may only come first in a conversation.", field=f"{where}.role")
    tool_calls = normalise_tool_calls(message.get("tool_calls"), f"{where}.tool_calls")
    if tool_calls and role != "assistant":
        raise RowError(
            f"only assistant messages make tool calls (this one is {role!r}).", field=f"{where}.tool_calls"
        )
    content = message.get("content")
    text = "" if content is None and tool_calls else text_of(content, f"{where}.content")
    if not text.strip() and not tool_calls:
        raise RowError(f"the {role} message is empty.", field=f"{where}.content")
    out: dict[str, Any] = {"role": role, "content": text}
    if tool_calls:
        out["tool_calls"] = tool_calls
    for key in _STRING_KEYS:
        value = message.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RowError(f"must be a string (got {describe(value)}).", field=f"{where}.{key}")
        out[key] = value
    if message.get("train") is not None:
        if not isinstance(message["train"], bool):
            raise RowError(
                f"must be true or false (got {describe(message['train'])}).", field=f"{where}.train"
            )
        out["train"] = message["train"]
    weight = message.get("weight")
    if weight is not None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise RowError(f"must be a finite number (got {describe(weight)}).", field=f"{where}.weight")
        out["weight"] = weight
    return out


def prompt_completion_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``prompt``/``completion`` row: both strings, or both lists of messages (the completion with
    an assistant turn). A string on one side and messages on the other is refused."""
    prompt, completion = row.get("prompt"), row.get("completion")
    if is_list(prompt) or is_list(completion):
        prompt_messages = normalise_messages(prompt, "prompt", need_assistant=False)
        completion_messages = normalise_messages(completion, "completion", need_assistant=True)
        return {"prompt": prompt_messages, "completion": completion_messages}
    return {"prompt": non_empty_str(row, "prompt"), "completion": non_empty_str(row, "completion")}


@attrs.frozen
class MessagesFormat:
    """OpenAI-style chat: a ``messages`` list of ``{role, content}``, optionally with a ``tools`` column.

    Tool calls, tool results and reasoning are kept; see the module docstring for what a message keeps.
    """

    name: str = "messages"
    canonical: str = "messages"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """A ``messages`` list whose items have a ``role``; weakly, any ``messages`` field."""
        if "messages" not in row:
            return FormatMatch.no("no 'messages' field")
        if isinstance(row.get("label"), bool):  # LLaMA-Factory's KTO layout: preference data
            return FormatMatch.no("has a true/false 'label' beside 'messages': KTO preference data")
        value = row["messages"]
        if is_list(value) and value and all(isinstance(m, Mapping) and "role" in m for m in value):
            return FormatMatch.yes(1.0, "'messages' is a list of {role, content} objects")
        return FormatMatch.yes(MALFORMED_SHARE, "has a 'messages' field, though not a list of messages")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Validate roles, contents and tool calls; content parts are joined into text."""
        converted: dict[str, Any] = {"messages": normalise_messages(row.get("messages"))}
        tools = tools_json(row.get("tools"))
        if tools is not None:
            converted["tools"] = tools
        return converted
