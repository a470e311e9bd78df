"""The format-detector plug-in protocol and the small values it exchanges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["CANONICAL_KINDS", "FormatDetector", "FormatMatch", "FormatOptions"]

CANONICAL_KINDS = ("messages", "prompt_completion", "text")
"""What a detector converts rows into: TRL's own conversational, prompt-completion and text rows."""


@attrs.frozen
class FormatOptions:
    """What a detector may need to know besides the row.

    Attributes:
        text_field: the field that holds plain text (``.dataset(..., text_field=...)``).
        chat: whether a chat template is in play, so instruction data becomes conversational
            prompt-completion rows rather than plain strings.
    """

    text_field: str = "text"
    chat: bool = False


@attrs.frozen
class FormatMatch:
    """How well one row fits a format: ``score`` 0 means not at all, and ``reason`` says why."""

    score: float
    reason: str

    @classmethod
    def no(cls, reason: str) -> FormatMatch:
        """A row that is not in this format."""
        return cls(0.0, reason)

    @classmethod
    def yes(cls, score: float, reason: str) -> FormatMatch:
        """A row in this format; a higher score is a more specific match (messages 1.0, text 0.5)."""
        return cls(score, reason)

    def __bool__(self) -> bool:
        return self.score > 0


@runtime_checkable
class FormatDetector(Protocol):
    """A dataset format: tells whether a row is in it and converts such a row to a canonical row.

    ``canonical`` is one of ``CANONICAL_KINDS``. ``convert`` raises ``RowError`` (with ``field=``) for a
    row it cannot train on; the loader adds the file and row.
    """

    name: str
    canonical: str

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """Say whether ``row`` is in this format, how specifically, and why (or why not)."""
        ...

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Return the canonical row for ``row``; never mutate ``row``."""
        ...
