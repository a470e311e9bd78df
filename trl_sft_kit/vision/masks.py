"""The kit's own loss masks for vision rows, on any processor chat template.

TRL's vision collator trains the assistant only through ``{% generation %}`` markers, which the chat
templates vision-language models ship with do not have. The kit finds the assistant turns as it does for
text (``trl_sft_kit.data.masks.tokenize_conversation``: the template rendered with sentinels, whatever
the template) on the conversation with its image placeholders, then carries those labels over to the
processor's tokens, in which each placeholder has grown into the image's tokens (``<image>`` repeated,
``<fake_token_around_image><global-img><image>...``, ``<|vision_start|><|image_pad|>...``).

The carrying over is an alignment of the two token lists (``difflib``): a token keeps its label only
where both lists hold the same run of tokens; everything the processor wrote for an image is never
trained. It is checked, not assumed: every trained token must land on the same token of the processor's
list (a truncated tail excepted), and every run the processor wrote differently must be or touch an image
token; anything else is a ``RowError`` naming the row, so a template and processor that render a row
differently never train misplaced labels.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from trl_sft_kit.data.masks import IGNORE_INDEX, tokenize_conversation
from trl_sft_kit.errors import DatasetError, RowError

__all__ = ["ConversationMasks", "align_labels"]


@attrs.frozen
class ConversationMasks:
    """What the kit needs to mask a vision row: the processor's tokenizer and template, and the loss.

    Attributes:
        tokenizer: the processor's (fast) tokenizer.
        chat_template: the template the processor renders with.
        media_token_ids: every token that stands for an image or marks one (see
            ``trl_sft_kit.vision.compile.media_tokens``).
        turns: ``"all"`` or ``"last"``, as ``loss(turns=...)``.
        roles: the messages trained, as ``loss(roles=...)``.
    """

    tokenizer: Any
    chat_template: str
    media_token_ids: frozenset[int]
    turns: Literal["all", "last"] = "all"
    roles: tuple[str, ...] = ("assistant",)

    def labels(
        self, messages: Sequence[Mapping[str, Any]], ids: Sequence[int], where: Mapping[str, Any] | None
    ) -> list[int]:
        """The labels of the processor's ``ids`` for this conversation: its trained turns only.

        Args:
            messages: the row's messages (content parts, ``{"type": "image"}`` for each image).
            ids: the processor's token ids of the row (no padding; truncated or not).
            where: the row's place (``path``, ``row``, ``line``) for errors, or None.

        Raises:
            RowError: the template cannot render the row, a trained turn has no end-of-turn token, or the
                processor's tokens cannot be matched with the rendering (see the module docstring).
        """
        place = dict(where or {})
        try:
            masked = tokenize_conversation(
                self.tokenizer,
                _text_parts(messages),
                turns=self.turns,
                roles=self.roles,
                chat_template=self.chat_template,
            )
        except RowError as exc:
            raise RowError(exc.reason, field=exc.field or "messages", **place) from None
        except DatasetError as exc:
            raise RowError(str(exc), field="messages", **place) from None
        try:
            return align_labels(masked.input_ids, masked.labels, ids, self.media_token_ids)
        except ValueError as exc:
            raise RowError(str(exc), field="messages", **place) from None


def _text_parts(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages with image payloads left out of their parts (the template only reads the type)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = [
                {"type": "image"} if isinstance(part, Mapping) and part.get("type") == "image" else part
                for part in content
            ]
            out.append({**message, "content": parts})
        else:
            out.append(dict(message))
    return out


def align_labels(
    rendered_ids: Sequence[int],
    rendered_labels: Sequence[int],
    ids: Sequence[int],
    media_token_ids: frozenset[int],
) -> list[int]:
    """``rendered_labels`` carried over to ``ids``, the same row as the processor tokenized it.

    Args:
        rendered_ids: the template's rendering tokenized alone (one placeholder per image).
        rendered_labels: their labels (``IGNORE_INDEX`` where not trained).
        ids: the processor's ids of the row: the placeholders expanded into image tokens, perhaps cut at
            the end by ``max_length``.
        media_token_ids: the tokens that stand for or mark an image.

    Returns:
        A label for each of ``ids``: the rendering's label where both hold the same run, else
        ``IGNORE_INDEX`` (image tokens are never trained).

    Raises:
        ValueError: a trained token of the rendering has no counterpart in ``ids`` (other than at a cut
            end), or the processor wrote something other than an image's tokens somewhere.

    Example:
        >>> align_labels([1, 9, 2, 3], [-100, -100, 2, 3], [1, 9, 9, 9, 2, 3], frozenset({9}))
        [-100, -100, -100, -100, 2, 3]
    """
    labels = [IGNORE_INDEX] * len(ids)
    matcher = difflib.SequenceMatcher(a=list(rendered_ids), b=list(ids), autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            labels[b0:b1] = rendered_labels[a0:a1]
            continue
        cut_end = b1 == len(ids) and a1 == len(rendered_ids) and tag == "delete"
        trained = [k for k in range(a0, a1) if rendered_labels[k] != IGNORE_INDEX]
        if trained and not cut_end:
            raise ValueError(
                f"the processor tokenized the row differently from its chat template where the loss is "
                f"trained (rendered tokens {a0}..{a1}, processor tokens {b0}..{b1}); the kit cannot place "
                "those labels. Check that the processor's chat template is the one the recipe names."
            )
        if b1 > b0 and not _touches_media(ids, b0, b1, media_token_ids):
            raise ValueError(
                f"the processor wrote tokens {b0}..{b1} ({list(ids[b0:b1])[:8]}) that are neither in the "
                "chat template's rendering nor an image's tokens; the kit cannot tell which to train."
            )
    return labels


def _touches_media(ids: Sequence[int], start: int, end: int, media: frozenset[int]) -> bool:
    """Whether ``ids[start:end]`` holds an image token or lies right next to one."""
    window = ids[max(start - 1, 0) : min(end + 1, len(ids))]
    return any(token in media for token in window)
