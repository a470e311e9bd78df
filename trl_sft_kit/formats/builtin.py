"""The built-in dataset formats: chat messages, instruction data, prompt-completion and plain text."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats.protocol import FormatMatch, FormatOptions
from trl_sft_kit.plugins import BUILTIN

__all__ = [
    "AlpacaFormat",
    "InstructionResponseFormat",
    "MessagesFormat",
    "PromptCompletionFormat",
    "TextFormat",
    "normalise_messages",
]

CHAT_ROLES = ("system", "user", "assistant", "tool")

# A row that has a format's own field (``messages``, the text field) with a wrong value still matches that
# format, weakly (a fifth of its usual score), so conversion reports what is wrong as a ``RowError``, which
# ``on_bad_rows="skip"`` can skip, instead of detection failing for the whole dataset.
MALFORMED_SHARE = 0.2


def _text_of(content: Any, field: str) -> str:
    """A message's content as one string; typed text parts are joined, other part types refused."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
        texts = []
        for index, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif _is_text_part(part):
                texts.append(part["text"])
            else:
                raise RowError(
                    f"content part {index} is {_describe(part)}; only text parts "
                    "({'type': 'text', 'text': ...}) can be trained on here.",
                    field=field,
                )
        return "".join(texts)
    raise RowError(
        f"content must be a string or a list of text parts (got {_describe(content)}).", field=field
    )


def _is_text_part(part: Any) -> bool:
    if not isinstance(part, Mapping):
        return False
    return part.get("type", "text") == "text" and isinstance(part.get("text"), str)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def normalise_messages(
    messages: Any, field: str = "messages", *, need_assistant: bool = True
) -> list[dict[str, Any]]:
    """Check a conversation and return it as ``[{"role", "content"[, "tool_calls", "name"]}]``.

    Raises:
        RowError: not a list of messages, an unknown role, non-text or empty content, a system message
            after the first, or (when ``need_assistant``) no assistant turn.
    """
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise RowError(f"must be a non-empty list of messages (got {_describe(messages)}).", field=field)
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        if not isinstance(message, Mapping):
            raise RowError(
                f"must be a message object with role and content (got {_describe(message)}).", field=where
            )
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise RowError(
                f"unknown role {role!r}; roles must be one of {', '.join(CHAT_ROLES)}.", field=f"{where}.role"
            )
        if role == "system" and index != 0:
            raise RowError("a system message may only come first in a conversation.", field=f"{where}.role")
        tool_calls = message.get("tool_calls")
        content = message.get("content")
        if content is None and role == "assistant" and tool_calls:
            text = ""
        else:
            text = _text_of(content, f"{where}.content")
        if not text.strip() and not (role == "assistant" and tool_calls):
            raise RowError(f"the {role} message is empty.", field=f"{where}.content")
        normalised: dict[str, Any] = {"role": role, "content": text}
        if tool_calls:
            normalised["tool_calls"] = tool_calls
        if message.get("name") is not None:
            normalised["name"] = message["name"]
        out.append(normalised)
    if need_assistant and not any(message["role"] == "assistant" for message in out):
        raise RowError(
            "the conversation has no assistant message, so there is nothing to learn.", field=field
        )
    return out


def _non_empty_str(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        raise RowError("is null or missing.", field=key)
    if not isinstance(value, str):
        raise RowError(f"must be a string (got {_describe(value)}).", field=key)
    if not value.strip():
        raise RowError("is empty.", field=key)
    return value


@attrs.frozen
class MessagesFormat:
    """OpenAI-style chat: a ``messages`` list of ``{role, content}``, optionally with a ``tools`` column."""

    name: str = "messages"
    canonical: str = "messages"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """A ``messages`` list whose items have a ``role``; weakly, any ``messages`` field."""
        if "messages" not in row:
            return FormatMatch.no("no 'messages' field")
        value = row["messages"]
        if isinstance(value, list) and value and all(isinstance(m, Mapping) and "role" in m for m in value):
            return FormatMatch.yes(1.0, "'messages' is a list of {role, content} objects")
        return FormatMatch.yes(MALFORMED_SHARE, "has a 'messages' field, though not a list of messages")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Validate roles and contents; content parts are joined into text."""
        converted: dict[str, Any] = {"messages": normalise_messages(row.get("messages"))}
        tools = row.get("tools")
        if tools not in (None, "", []):
            converted["tools"] = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
        return converted


ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
ALPACA_PROMPT_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


def instruction_row(
    instruction: str, answer: str, options: FormatOptions, *, context: str = "", system: str | None = None,
    history: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Build a prompt-completion row from an instruction, optional input, system prompt and history.

    With a chat template the row is conversational (``prompt`` a list of messages, ``completion`` one
    assistant message), so the template formats it; without one, the Alpaca prompt layout is used.
    """
    user = f"{instruction}\n\n{context}" if context.strip() else instruction
    if options.chat:
        prompt: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        for question, reply in history:
            prompt += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
        prompt.append({"role": "user", "content": user})
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}
    text = ""
    if system:
        text += f"{system}\n\n"
    for question, reply in history:
        text += ALPACA_PROMPT.format(instruction=question) + reply + "\n\n"
    layout = ALPACA_PROMPT_WITH_INPUT if context.strip() else ALPACA_PROMPT
    text += layout.format(instruction=instruction, input=context)
    return {"prompt": text, "completion": answer}


@attrs.frozen
class AlpacaFormat:
    """Alpaca: ``instruction``, optional ``input``, ``output``; optional ``system`` and ``history``."""

    name: str = "alpaca"
    canonical: str = "prompt_completion"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """``instruction`` and ``output`` fields."""
        if "instruction" in row and "output" in row:
            return FormatMatch.yes(0.9, "has 'instruction' and 'output' fields")
        return FormatMatch.no("needs 'instruction' and 'output' fields")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Instruction (+ input) becomes the prompt, output the completion."""
        instruction = _non_empty_str(row, "instruction")
        output = _non_empty_str(row, "output")
        context = row.get("input") or ""
        if not isinstance(context, str):
            raise RowError(f"must be a string (got {_describe(context)}).", field="input")
        system = row.get("system") or None
        if system is not None and not isinstance(system, str):
            raise RowError(f"must be a string (got {_describe(system)}).", field="system")
        history = _history(row.get("history"))
        return instruction_row(instruction, output, options, context=context, system=system, history=history)


def _history(value: Any) -> list[tuple[str, str]]:
    if value in (None, ""):
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RowError(
            f"must be a list of [instruction, response] pairs (got {_describe(value)}).", field="history"
        )
    pairs = []
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, Sequence)
            or isinstance(pair, str)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise RowError(
                f"item {index} must be an [instruction, response] pair of strings.", field="history"
            )
        pairs.append((pair[0], pair[1]))
    return pairs


INSTRUCTION_PAIRS: tuple[tuple[str, str], ...] = (
    ("instruction", "response"),
    ("question", "answer"),
    ("prompt", "response"),
    ("query", "response"),
    ("input", "output"),
)
"""The (instruction, answer) field pairs the instruction-response format recognises, most specific first."""

INSTRUCTION_CONTEXTS = ("context", "input")
"""Fields that may hold context for the instruction (Dolly's ``context``), put after it in the prompt."""


@attrs.frozen
class InstructionResponseFormat:
    """Instruction-response rows: ``instruction``/``response`` and cousins (``question``/``answer``, ...).

    An optional ``context`` (or ``input``, unless it is the instruction itself) follows the instruction.
    """

    name: str = "instruction_response"
    canonical: str = "prompt_completion"

    def _pair(self, row: Mapping[str, Any]) -> tuple[str, str] | None:
        for pair in INSTRUCTION_PAIRS:
            if pair[0] in row and pair[1] in row:
                return pair
        return None

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """One of the recognised field pairs."""
        pair = self._pair(row)
        if pair is None:
            pairs = ", ".join(f"{a}/{b}" for a, b in INSTRUCTION_PAIRS)
            return FormatMatch.no(f"needs one of the field pairs {pairs}")
        # input/output alone is weaker: it is also part of alpaca rows.
        score = 0.6 if pair == ("input", "output") else 0.8
        return FormatMatch.yes(score, f"has {pair[0]!r} and {pair[1]!r} fields")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """The instruction (and its context) becomes the prompt, the response the completion."""
        pair = self._pair(row)
        if pair is None:
            raise RowError("has none of the instruction/response field pairs.", field=None)
        system = row.get("system") or None
        if system is not None and not isinstance(system, str):
            raise RowError(f"must be a string (got {_describe(system)}).", field="system")
        context = ""
        for key in INSTRUCTION_CONTEXTS:
            if key not in pair and row.get(key) not in (None, ""):
                if not isinstance(row[key], str):
                    raise RowError(f"must be a string (got {_describe(row[key])}).", field=key)
                context = row[key]
                break
        instruction, answer = _non_empty_str(row, pair[0]), _non_empty_str(row, pair[1])
        return instruction_row(instruction, answer, options, context=context, system=system)


@attrs.frozen
class PromptCompletionFormat:
    """``prompt`` and ``completion``: both strings, or both lists of messages."""

    name: str = "prompt_completion"
    canonical: str = "prompt_completion"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """``prompt`` and ``completion`` fields."""
        if "prompt" in row and "completion" in row:
            return FormatMatch.yes(0.9, "has 'prompt' and 'completion' fields")
        return FormatMatch.no("needs 'prompt' and 'completion' fields")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Checked and passed through unchanged in shape."""
        prompt, completion = row.get("prompt"), row.get("completion")
        if isinstance(prompt, list) or isinstance(completion, list):
            prompt_messages = normalise_messages(prompt, "prompt", need_assistant=False)
            completion_messages = normalise_messages(completion, "completion", need_assistant=True)
            return {"prompt": prompt_messages, "completion": completion_messages}
        return {"prompt": _non_empty_str(row, "prompt"), "completion": _non_empty_str(row, "completion")}


@attrs.frozen
class TextFormat:
    """Plain text in one field (``text`` unless ``.dataset(..., text_field=...)`` names another)."""

    name: str = "text"
    canonical: str = "text"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """The text field holds a string (weakly: the text field is there at all)."""
        if options.text_field not in row:
            return FormatMatch.no(f"no field {options.text_field!r}")
        if isinstance(row[options.text_field], str):
            return FormatMatch.yes(0.5, f"has a text field {options.text_field!r}")
        reason = f"has a field {options.text_field!r}, though not a string"
        return FormatMatch.yes(MALFORMED_SHARE * 0.5, reason)

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """The text field, renamed to ``text``."""
        return {"text": _non_empty_str(row, options.text_field)}


BUILTIN_FORMATS = (
    MessagesFormat(),
    AlpacaFormat(),
    InstructionResponseFormat(),
    PromptCompletionFormat(),
    TextFormat(),
)


def register_builtin_formats() -> None:
    """Register the built-in formats through the same call third-party packages use."""
    from trl_sft_kit.formats.registry import register_format

    for detector in BUILTIN_FORMATS:
        register_format(detector, provider=BUILTIN)
