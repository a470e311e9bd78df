"""Tokens and labels: a rendered row tokenized with offsets, and each token that overlaps a span trained."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from trl_sft_kit.data.loss_roles import content_spans
from trl_sft_kit.data.masks import memo
from trl_sft_kit.data.masks.end_of_turn import _turns_without_end, end_of_turn_trained
from trl_sft_kit.data.masks.tokens import IGNORE_INDEX, MaskedTokens, TokenSpan
from trl_sft_kit.errors import DatasetError, RowError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.masks.rendering import _Chat


def _tokenize_chat(chat: _Chat, chosen: set[int], require_end_of_turn: bool) -> MaskedTokens:
    rendered, char_spans = _render_spans(chat, chosen)
    encoding = chat.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    return _label_chat(
        chat.tokenizer,
        rendered,
        encoding["input_ids"],
        encoding["offset_mapping"],
        char_spans,
        chosen,
        require_end_of_turn,
        assistant_turns(chat, chosen),
    )


def _render_spans(chat: _Chat, chosen: set[int]) -> tuple[str, list[tuple[int, int, int]]]:
    """The rendered conversation and the character spans of its assistant turns (none when nothing is
    trained): everything of a row that needs the template, and no tokenizer call."""
    try:
        rendered = chat.render(chat.messages)
    except Exception as exc:  # the template refuses the row (roles, system message, content type, ...)
        raise RowError(f"The chat template cannot render this conversation: {exc}", field="messages") from exc
    char_spans = memo.char_spans(chat, rendered) if chosen else []
    turns = assistant_turns(chat, chosen)
    if chosen != turns:  # system, user or tool messages chosen by loss roles
        char_spans = content_spans(chat.messages, rendered, chosen, char_spans)
    return rendered, char_spans


def assistant_turns(chat: _Chat, chosen: set[int]) -> set[int]:
    """The assistant messages among those trained: the turns whose end-of-turn token is checked."""
    return {i for i in chosen if chat.messages[i].get("role") == "assistant"}


def _label_chat(
    tokenizer: PreTrainedTokenizerBase,
    rendered: str,
    ids: Sequence[int],
    offset_mapping: Sequence[Sequence[int]],
    char_spans: Sequence[tuple[int, int, int]],
    chosen: set[int],
    require_end_of_turn: bool,
    turns: set[int] | None = None,
    *,
    control: frozenset[int] | None = None,
) -> MaskedTokens:
    """Labels of a rendered conversation from its tokens and offsets (one call of a batch or alone);
    ``turns`` are the assistant messages whose end-of-turn token is checked (``chosen`` when None) and
    ``control`` the tokenizer's ``control_ids`` (worked out here when not given)."""
    input_ids: list[int] = list(ids)
    offsets: list[tuple[int, int]] = [(o[0], o[1]) for o in offset_mapping]
    stops = [stop for _, stop in offsets]
    labels = [IGNORE_INDEX] * len(input_ids)
    spans: list[TokenSpan] = []
    for begin, end, index in char_spans:
        tokens = _overlapping(offsets, stops, begin, end) if index in chosen else []
        if not tokens:
            continue
        for position in tokens:
            labels[position] = input_ids[position]
        if spans and spans[-1].message_index == index and spans[-1].end >= tokens[0]:
            spans[-1] = spans[-1]._replace(end=tokens[-1] + 1)
        else:
            spans.append(TokenSpan(tokens[0], tokens[-1] + 1, index))
    if chosen and not spans:
        raise RowError(
            "The chat template renders none of the assistant messages to train on (is their content in a "
            "form it renders, e.g. a string rather than a list of parts?).",
            field="messages",
        )
    checked = chosen if turns is None else turns
    missing = _turns_without_end(
        tokenizer, input_ids, [s for s in spans if s.message_index in checked], control
    )
    if missing and require_end_of_turn:
        raise DatasetError(
            f"The chat template writes no end-of-turn token inside assistant message {missing[0]}: the last "
            "token of the turn is content, so the model would never learn to stop. The template probably "
            "writes the token that ends an assistant turn at the start of the next message (like GLM-4's "
            "'<|user|>'). Use a chat template that closes each assistant turn itself, train every token with "
            "loss('trl') or loss('all'), or pass require_end_of_turn=False to train without it."
        )
    return MaskedTokens(input_ids, labels, tuple(spans), not missing, rendered)


def _overlapping(offsets: Sequence[tuple[int, int]], stops: Sequence[int], begin: int, end: int) -> list[int]:
    """Indices of the tokens that overlap characters ``[begin, end)`` (transformers' assistant-mask rule)."""
    found = []
    for k in range(bisect.bisect_right(stops, begin), len(offsets)):
        start, stop = offsets[k]
        if start >= end:
            break
        if stop > start:
            found.append(k)
    return found


def _plain(tokenizer: PreTrainedTokenizerBase, ids: list[int], start: int, text: str) -> MaskedTokens:
    labels = [IGNORE_INDEX] * start + ids[start:]
    spans = (TokenSpan(start, len(ids), -1),) if start < len(ids) else ()
    masked = MaskedTokens(ids, labels, spans, True, text)
    return attrs.evolve(masked, end_of_turn_trained=end_of_turn_trained(tokenizer, masked))
