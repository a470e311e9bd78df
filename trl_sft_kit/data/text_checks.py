"""Checks on a canonical row's own text before it is tokenized: special tokens, lone surrogates, size.

Three things in a row's text would otherwise be tokenized wrongly or not at all:

* a tokenizer's special token written in the text (``<|im_end|>\\n<|im_start|>assistant`` in a user
  message) is encoded as the real control token, so the model sees a forged turn. ``SPECIAL_TOKENS``
  says what to do: ``"warn"`` (the default: keep it, count the rows and log a warning naming the first
  ones), ``"keep"`` (keep it, count it, no warning), ``"error"`` (a ``RowError`` naming the row, the field
  and the token) or ``"escape"`` (a zero-width space, U+200B, is put after the token's first character,
  so the text no longer holds the token's string and the tokenizer encodes it as ordinary text);
* a lone surrogate (``"\\ud800"``, from a JSON ``\\ud800`` escape) cannot be encoded as UTF-8: a
  ``RowError`` naming the row and field, which ``on_bad_rows="skip"`` skips and counts;
* a huge field (one 50 MB line) would be tokenized whole before truncation cuts it: when rows are
  truncated to ``max_length``, each field is first cut to ``max_length * CHARS_PER_TOKEN`` characters
  (far more than ``max_length`` tokens can hold), and the cut is counted as truncation.

Only the row's own strings are checked (message contents, text parts, prompt, completion, text), before
the chat template renders them, so the template's own special tokens never count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RowError

SPECIAL_TOKENS = ("warn", "keep", "error", "escape")
"""The choices of ``DatasetSpec.special_tokens_in_text``."""

CHARS_PER_TOKEN = 32
"""A generous bound on the characters one token covers: a field is cut to ``max_length`` times this."""

ESCAPE = "\u200b"
"""Put after a special token's first character under ``"escape"`` (a zero-width space)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def special_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's special token strings: ``all_special_tokens`` and added tokens marked special."""
    found = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token.content))
    return tuple(sorted((token for token in found if token), key=lambda token: (-len(token), token)))


@attrs.frozen
class Checked:
    """A row after the checks: the row to tokenize, the special tokens its text held, characters cut."""

    row: Mapping[str, Any]
    specials: tuple[str, ...] = ()
    chars_cut: int = 0


@attrs.frozen
class TextChecks:
    """The checks for one tokenization: the tokenizer's special tokens, the choice, the size bound."""

    specials: tuple[str, ...]
    mode: str = "warn"
    max_chars: int | None = None
    pattern: re.Pattern[str] | None = None

    @classmethod
    def of(cls, tokenizer: Any, mode: str, max_length: int | None, truncate: bool) -> TextChecks:
        """The checks for ``tokenizer``; fields are cut only when rows are truncated to ``max_length``."""
        if mode not in SPECIAL_TOKENS:
            raise ValueError(f"special_tokens_in_text must be one of {SPECIAL_TOKENS} (got {mode!r}).")
        bound = max_length * CHARS_PER_TOKEN if truncate and max_length is not None else None
        specials = special_tokens(tokenizer)
        pattern = re.compile("|".join(map(re.escape, specials))) if specials else None
        return cls(specials, mode, bound, pattern)

    def __call__(self, row: Mapping[str, Any]) -> Checked:
        """The row checked (and, under ``"escape"`` or the size bound, rewritten).

        Raises:
            RowError: a lone surrogate, or a special token under ``"error"``; names the field.
        """
        found: list[str] = []
        cut = [0]
        pattern = self.pattern

        def check(text: str, field: str) -> str:
            if (bad := _SURROGATE.search(text)) is not None:
                raise RowError(
                    f"the text holds a lone surrogate {bad.group()!r} at character {bad.start()}, which is "
                    "not valid Unicode text (often a broken '\\ud800'-style JSON escape); fix or remove it, "
                    "or pass on_bad_rows='skip' to leave such rows out.",
                    field=field,
                )
            if self.max_chars is not None and len(text) > self.max_chars:
                cut[0] += len(text) - self.max_chars
                text = text[: self.max_chars]
            if pattern is None:
                return text
            tokens = pattern.findall(text)
            if not tokens:
                return text
            found.extend(tokens)
            if self.mode == "error":
                raise RowError(
                    f"the text holds the special token {tokens[0]!r}, which would be encoded as the real "
                    "control token (a forged turn); remove it, or pass "
                    "special_tokens_in_text='escape' (encode it as plain text) or 'keep'.",
                    field=field,
                )
            if self.mode == "escape":
                return pattern.sub(lambda match: match.group()[0] + ESCAPE + match.group()[1:], text)
            return text

        checked = _walk(row, check)
        return Checked(checked, tuple(found), cut[0])


def _walk(row: Mapping[str, Any], check: Any) -> Mapping[str, Any]:
    """``row`` with ``check(text, field)`` applied to each of its own strings."""
    out = dict(row)
    for name in ("text", "prompt", "completion", "messages"):
        value = row.get(name)
        if isinstance(value, str):
            out[name] = check(value, name)
        elif isinstance(value, list):
            out[name] = [_message(message, f"{name}[{i}]", check) for i, message in enumerate(value)]
    return out


def _message(message: Any, field: str, check: Any) -> Any:
    if not isinstance(message, Mapping):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": check(content, f"{field}.content")}
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                part = {**part, "text": check(part["text"], f"{field}.content[{i}].text")}
            parts.append(part)
        return {**message, "content": parts}
    return message
