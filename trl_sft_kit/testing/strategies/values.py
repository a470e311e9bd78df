"""What the strategies share: the formats generated, the field names they read, ``RowCase``."""

from __future__ import annotations

from typing import Any

import attrs

from trl_sft_kit.formats.protocol import FormatOptions
from trl_sft_kit.testing.sample_data import FORMATS

BUILTIN_FORMATS: tuple[str, ...] = (*FORMATS, "preference_chosen")  # the sample-data formats + preference
"""The built-in formats ``cases`` and ``rows`` generate rows of."""

FIELD_NAMES: tuple[str, ...] = (
    "messages", "conversations", "role", "content", "from", "value", "tool_calls", "function", "name",
    "arguments", "id", "type", "tool_call_id", "tools", "system", "instruction", "input", "output",
    "history", "response", "question", "answer", "prompt", "query", "completion", "context", "text",
    "chosen", "rejected", "label", "reasoning_content", "thinking", "train", "weight",
)  # fmt: skip
"""Field names the built-in formats read: junk uses them so that it reaches past detection."""

EXTRA_FIELDS = ("id", "source", "lang", "meta", "score")
"""Unrelated columns real datasets carry; no built-in format reads them."""


@attrs.frozen
class RowCase:
    """A generated row with what a test needs to check its conversion.

    Attributes:
        format: the built-in format the row is in.
        row: the row.
        texts: the strings that must appear, whole, in some string of the converted row.
        options: the options to detect and convert it with (text field, chat template or not).
        tools: the tool schemas the converted row must carry (``tools`` as JSON), or ``None``.
        excluded: the format leaves this row out on purpose (a KTO row labelled false).
        joined: for preference rows whose prompt is inside chosen: chosen == prompt + completion.
    """

    format: str
    row: dict[str, Any]
    texts: tuple[str, ...]
    options: FormatOptions = attrs.field(factory=FormatOptions)
    tools: list[dict[str, Any]] | None = None
    excluded: bool = False
    joined: bool = False
