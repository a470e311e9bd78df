"""The format-detector plug-in protocol and the small values it exchanges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from trl_sft_kit.errors import RowError

__all__ = ["CANONICAL_KINDS", "FormatDetector", "FormatMatch", "FormatOptions", "RowExcludedError"]

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


class RowExcludedError(RowError):
    """A good row that its format leaves out on purpose (a KTO row labelled undesirable).

    ``convert`` raises it instead of returning a row. It is not a bad row: whatever ``on_bad_rows`` says,
    the row is left out, and the report counts it among the skipped rows with this reason.
    """


@runtime_checkable
class FormatDetector(Protocol):
    """A dataset format: tells whether a row is in it and converts such a row to a canonical row.

    ``canonical`` is one of ``CANONICAL_KINDS``. ``convert`` raises ``RowError`` (with ``field=``) for a
    row it cannot train on, or ``RowExcludedError`` for a row it leaves out on purpose; the loader adds the
    file and row. Any other exception is a bug of the detector, and is reported as a ``PluginError``.

    A detector may also have an ``auto_refusal`` attribute, a sentence: then ``format="auto"`` refuses rows
    it detects with that sentence, and the format is used only when a recipe names it (preference data).

    Example:
        >>> from trl_sft_kit.formats import FormatMatch, FormatOptions, register_format, unregister_format
        >>> class QAFormat:
        ...     name, canonical = "qa_example", "prompt_completion"
        ...     def match(self, row, options):
        ...         if "q" in row and "a" in row:
        ...             return FormatMatch.yes(0.9, "has 'q' and 'a' fields")
        ...         return FormatMatch.no("needs 'q' and 'a' fields")
        ...     def convert(self, row, options):
        ...         return {"prompt": row["q"], "completion": row["a"]}
        >>> register_format(QAFormat())
        <QAFormat 'qa_example' from user code>
        >>> unregister_format("qa_example")
    """

    name: str
    canonical: str

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """Say whether ``row`` is in this format, how specifically, and why (or why not)."""
        ...

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Return the canonical row for ``row``; never mutate ``row``."""
        ...
