"""One tokenized row as a ``RenderedRow``: its text in runs of tokens that carry loss or not, and that
``max_length`` keeps or cuts. Used by ``inspect_recipe`` and by the vision inspection."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from trl_sft_kit.inspection.values import RenderedRow, TokenSegment

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.masks import MaskedTokens

__all__ = ["render_row"]


def render_row(
    tokenizer: PreTrainedTokenizerBase,
    index: int,
    source: str | None,
    masked: MaskedTokens,
    max_length: int | None,
) -> RenderedRow:
    from trl_sft_kit.data.masks import IGNORE_INDEX

    ids = list(masked.input_ids)
    mask = [label != IGNORE_INDEX for label in masked.labels]
    cut_at = max_length if max_length is not None and len(ids) > max_length else None
    state = [(mask[k], cut_at is not None and k >= cut_at) for k in range(len(ids))]
    bounds = [0, *(k for k in range(1, len(ids)) if state[k] != state[k - 1]), len(ids)]

    def decode(token_ids: list[int]) -> str:
        return str(tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))

    # Each segment is the text the tokens add to the rendering: decoding a prefix and taking what the next
    # boundary's prefix adds keeps spaces that a decoder drops at the start of a piece decoded alone.
    prefix = {bound: decode(ids[:bound]) for bound in bounds}
    # A boundary inside a multi-byte character (its bytes spread over tokens) would show U+FFFD on both
    # sides: move it forward, past the character's last token.
    whole = prefix[len(ids)]
    moved = []
    for bound in bounds:
        step = bound
        while 0 < step < len(ids) and prefix[step].endswith("\ufffd") and step - bound < 8:
            text = prefix[step]
            if whole.startswith(text):  # the character really is U+FFFD
                break
            step += 1
            prefix[step] = prefix.get(step) or decode(ids[:step])
        moved.append(step)
    bounds = sorted(set(moved))
    segments = []
    for start, end in itertools.pairwise(bounds):
        before, after = prefix[start], prefix[end]
        text = after[len(before) :] if after.startswith(before) else decode(ids[start:end])
        loss, cut = state[start]
        segments.append(TokenSegment(text, loss, cut))
    tokens = tokenizer.batch_decode(
        [[token] for token in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    return RenderedRow(
        index=index,
        source=source,
        token_ids=tuple(ids),
        tokens=tuple(str(token) for token in tokens),
        loss_mask=tuple(mask),
        segments=tuple(segments),
        cut_at=cut_at,
    )
