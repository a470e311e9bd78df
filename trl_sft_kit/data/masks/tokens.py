"""What the loss masks give: a row's token ids, their labels and the trained spans."""

from __future__ import annotations

from typing import NamedTuple

import attrs

#: Label of a token that is left out of the loss (PyTorch's ``CrossEntropyLoss`` default).
IGNORE_INDEX = -100


class TokenSpan(NamedTuple):
    """Tokens ``[start, end)`` of ``input_ids`` that are trained, and the message they come from.

    ``message_index`` is the index in the conversation (prompt and completion counted together), or ``-1``
    for plain text and string prompt/completion rows.
    """

    start: int
    end: int
    message_index: int


@attrs.frozen
class MaskedTokens:
    """Token ids of one row and their labels, ``-100`` wherever the loss must not look.

    Attributes:
        input_ids: The token ids, as ``apply_chat_template(tokenize=True)`` (or the tokenizer) gives them.
        labels: ``input_ids`` where trained, ``IGNORE_INDEX`` elsewhere.
        spans: The trained spans, in order.
        end_of_turn_trained: Whether every trained turn ends on an end-of-turn token (a control token).
        text: The text that was tokenized.
    """

    input_ids: list[int]
    labels: list[int]
    spans: tuple[TokenSpan, ...] = ()
    end_of_turn_trained: bool = True
    text: str = ""

    @property
    def num_trained(self) -> int:
        """Number of tokens the loss looks at."""
        return sum(label != IGNORE_INDEX for label in self.labels)

    def trained_ids(self) -> list[int]:
        """The trained token ids, in order (spans joined)."""
        return [label for label in self.labels if label != IGNORE_INDEX]
