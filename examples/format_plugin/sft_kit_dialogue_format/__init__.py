"""A ``trl_sft_kit`` format plug-in for dialogues written as a plain list of alternating turns.

A row ``{"dialogue": ["Hi!", "Hello.", ...], "persona": "..."}`` becomes the canonical messages row
``{"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}, ...]}``: turns
alternate, the user first, and the optional ``persona`` is the system message.

Example:
    >>> from trl_sft_kit.formats import FormatOptions
    >>> DialogueFormat().convert({"dialogue": ["Hi!", "Hello."]}, FormatOptions())
    {'messages': [{'role': 'user', 'content': 'Hi!'}, {'role': 'assistant', 'content': 'Hello.'}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import FormatMatch, FormatOptions

__all__ = ["DialogueFormat"]

__version__ = "0.1.0"


class DialogueFormat:
    """Rows with a ``dialogue`` list of turn strings (and an optional ``persona``)."""

    name = "dialogue"
    canonical = "messages"

    def __repr__(self) -> str:
        return "DialogueFormat()"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """A ``dialogue`` list of strings; weakly any ``dialogue`` field, so conversion says what is wrong."""
        value = row.get("dialogue")
        if "dialogue" not in row:
            return FormatMatch.no("no 'dialogue' field")
        if isinstance(value, list) and value and all(isinstance(turn, str) for turn in value):
            return FormatMatch.yes(0.9, "'dialogue' is a list of turn strings")
        return FormatMatch.yes(0.2, "has a 'dialogue' field, though not a list of strings")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """User and assistant turns, alternating; raises ``RowError`` naming the field of a bad row."""
        turns = row.get("dialogue")
        if not isinstance(turns, list) or len(turns) < 2:
            raise RowError("must be a list of at least two turns, the user's first.", field="dialogue")
        messages: list[dict[str, str]] = []
        persona = row.get("persona")
        if persona not in (None, ""):
            if not isinstance(persona, str) or not persona.strip():
                raise RowError("must be a non-empty string.", field="persona")
            messages.append({"role": "system", "content": persona})
        for index, turn in enumerate(turns):
            if not isinstance(turn, str) or not turn.strip():
                raise RowError("each turn must be a non-empty string.", field=f"dialogue[{index}]")
            messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": turn})
        return {"messages": messages}
