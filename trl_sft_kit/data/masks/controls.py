"""The tokenizer's control tokens (special and added tokens) as patterns over rendered text.

Cuts between renderings are moved to the edge of a control token they fall inside, so a span never
splits ``<|im_end|>``; the run of control tokens after a turn is where the turn may end.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class _Controls:
    """The tokenizer's control tokens (special and added tokens) as a pattern over text."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.pattern, self.or_space = _control_patterns(_control_strings(tokenizer))

    def snap(self, text: str, cut: int) -> int:
        """Move ``cut`` back to the start of the control token it falls inside, if any."""
        if cut <= 0 or cut >= len(text):
            return cut
        for match in self.pattern.finditer(text, max(0, cut - 64), min(len(text), cut + 64)):
            if match.start() < cut < match.end():
                return match.start()
        return cut

    def snap_forward(self, text: str, cut: int) -> int:
        """Move ``cut`` on to the end of the control token it falls inside, if any."""
        start = self.snap(text, cut)
        if start == cut:
            return cut
        match = self.pattern.match(text, start)
        return match.end() if match else cut

    def contains(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def first(self, text: str) -> str | None:
        match = self.pattern.search(text)
        return match.group() if match else None

    def leading(self, text: str) -> list[re.Match[str]]:
        """The control tokens of the run of control tokens and whitespace that ``text`` starts with."""
        found, pos = [], 0
        while (match := self.or_space.match(text, pos)) is not None and match.end() > pos:
            if not match.group().isspace():
                found.append(match)
            pos = match.end()
        return found


def _control_strings(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    tokens = set(tokenizer.get_added_vocab()) | set(tokenizer.all_special_tokens)
    return tuple(sorted((t for t in tokens if t.strip()), key=lambda t: (-len(t), t)))


@lru_cache(maxsize=16)
def _control_patterns(tokens: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    alternation = "|".join(map(re.escape, tokens)) or r"(?!x)x"
    return re.compile(alternation), re.compile(rf"(?:{alternation})|\s+")
