"""The built-in dataset formats: instruction data, prompt-completion and plain text, and the full list.

Chat formats live in ``messages`` (OpenAI) and ``sharegpt``, preference data in ``preference``; all of them
register here, through the same ``register_format`` call a third-party package's detector goes through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats.messages import (
    MALFORMED_SHARE,
    MessagesFormat,
    describe,
    non_empty_str,
    normalise_messages,
    optional_str,
    prompt_completion_row,
)
from trl_sft_kit.formats.preference import PreferenceChosenFormat
from trl_sft_kit.formats.protocol import FormatMatch, FormatOptions
from trl_sft_kit.formats.sharegpt import ShareGPTFormat
from trl_sft_kit.plugins import BUILTIN

__all__ = [
    "BUILTIN_FORMATS",
    "AlpacaFormat",
    "InstructionResponseFormat",
    "MessagesFormat",
    "PreferenceChosenFormat",
    "PromptCompletionFormat",
    "ShareGPTFormat",
    "TextFormat",
    "normalise_messages",
    "register_builtin_formats",
]


ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
ALPACA_PROMPT_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


def instruction_row(
    instruction: str,
    answer: str,
    options: FormatOptions,
    *,
    context: str = "",
    system: str | None = None,
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
        instruction = non_empty_str(row, "instruction")
        output = non_empty_str(row, "output")
        context = row.get("input") or ""
        if not isinstance(context, str):
            raise RowError(f"must be a string (got {describe(context)}).", field="input")
        system = _system(row)
        history = _history(row.get("history"))
        return instruction_row(instruction, output, options, context=context, system=system, history=history)


def _system(row: Mapping[str, Any]) -> str | None:
    """The optional ``system`` field: a string, or ``None`` when it is missing, null or blank."""
    system = optional_str(row, "system")
    return system if system is not None and system.strip() else None


def _history(value: Any) -> list[tuple[str, str]]:
    if value in (None, ""):
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RowError(
            f"must be a list of [instruction, response] pairs (got {describe(value)}).", field="history"
        )
    pairs = []
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, Sequence)
            or isinstance(pair, str)
            or len(pair) != 2
            or not all(isinstance(part, str) and part.strip() for part in pair)
        ):
            raise RowError(
                f"item {index} must be an [instruction, response] pair of non-empty strings.", field="history"
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
        system = _system(row)
        context = ""
        for key in INSTRUCTION_CONTEXTS:
            if key not in pair and row.get(key) not in (None, ""):
                if not isinstance(row[key], str):
                    raise RowError(f"must be a string (got {describe(row[key])}).", field=key)
                context = row[key]
                break
        instruction, answer = non_empty_str(row, pair[0]), non_empty_str(row, pair[1])
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
        return prompt_completion_row(row)


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
        return {"text": non_empty_str(row, options.text_field)}


BUILTIN_FORMATS = (
    MessagesFormat(),
    AlpacaFormat(),
    InstructionResponseFormat(),
    PromptCompletionFormat(),
    TextFormat(),
    ShareGPTFormat(),
    PreferenceChosenFormat(),
)
"""Every built-in detector, in registration order (``format_names()`` lists them first, in this order)."""


def register_builtin_formats() -> None:
    """Register the built-in formats through the same call third-party packages use."""
    from trl_sft_kit.formats.registry import register_format

    for detector in BUILTIN_FORMATS:
        register_format(detector, provider=BUILTIN)
