"""``TokenizationReport``: what tokenizing and truncating a source did, every row and token counted."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from trl_sft_kit.data.loss_words import loss_words
from trl_sft_kit.data.report import SkippedRow
from trl_sft_kit.data.text_checks import CHARS_PER_TOKEN

__all__ = ["TokenizationReport"]


def _names(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(names)


@attrs.frozen
class TokenizationReport:
    """What tokenization and truncation did: rows, tokens, what carries loss, and everything cut."""

    loss: str
    rows_in: int
    rows_out: int
    tokens: int
    trained_tokens: int
    max_length: int | None
    rows_truncated: int = 0
    tokens_truncated: int = 0
    rows_without_trained_tokens: int = 0
    rows_all_trained_tokens_cut: int = 0
    skipped: tuple[SkippedRow, ...] = ()
    roles: tuple[str, ...] = attrs.field(default=("assistant",), converter=_names)
    turns: str = "all"
    rows_with_special_tokens: int = 0
    """Rows whose own text holds a special token of the tokenizer (``text_checks``)."""
    special_token_rows: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """The first such rows (``file.jsonl, line 12``)."""
    special_tokens_in_text: str = "warn"
    """What was done with them: ``warn``/``keep`` (kept), ``escape`` (encoded as plain text)."""
    rows_cut_by_chars: int = 0
    """Rows with a field cut to ``max_length * CHARS_PER_TOKEN`` characters before tokenizing (also in
    ``rows_truncated``)."""
    chars_cut: int = 0
    """Characters cut so."""

    def summary(self) -> str:
        """A few lines for logs and reports."""
        share = self.trained_tokens / self.tokens if self.tokens else 0.0
        lines = [
            f"tokens: {self.rows_out} rows, {self.tokens} tokens, "
            f"{self.trained_tokens} carry loss "
            f"({share:.1%}: {loss_words(self.loss, self.roles, self.turns)})",
        ]
        if self.max_length is not None:
            lines.append(
                f"  max_length {self.max_length}: {self.rows_truncated} rows truncated, "
                f"{self.tokens_truncated} tokens cut, {self.rows_all_trained_tokens_cut} rows dropped "
                "because "
                "every token carrying loss was cut"
            )
        if self.rows_cut_by_chars:
            lines.append(
                f"  {self.rows_cut_by_chars} rows had a field cut before tokenizing "
                f"({self.chars_cut} characters beyond max_length * {CHARS_PER_TOKEN})"
            )
        if self.rows_without_trained_tokens:
            lines.append(f"  {self.rows_without_trained_tokens} rows dropped: no token carries loss")
        if self.rows_with_special_tokens:
            lines.append(f"  {self.special_tokens_line()}")
        lines += [f"  skipped {row}" for row in self.skipped[:10]]
        return "\n".join(lines)

    def special_tokens_line(self) -> str:
        """One line on the rows whose text holds a special token, or '' when none does."""
        if not self.rows_with_special_tokens:
            return ""
        done = {
            "escape": "escaped: encoded as plain text",
            "keep": "kept: encoded as control tokens",
            "warn": "kept: encoded as control tokens, which can forge turns",
        }[self.special_tokens_in_text]
        first = ", ".join(self.special_token_rows)
        return (
            f"{self.rows_with_special_tokens} rows hold a special token in their text ({done}); "
            f"first: {first}"
            + (
                ""
                if self.special_tokens_in_text != "warn"
                else "; pass special_tokens_in_text='error', 'escape' or 'keep' to choose"
            )
        )
