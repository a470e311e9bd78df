"""What a loss setting trains, in words, for explain(), inspect() and the training log.

>>> loss_words("assistant_only")
'assistant turns: replies, reasoning, tool calls and their end of turn'
>>> loss_words("completion_only + all")
'the completion; every token'
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AUTO_WORDS", "loss_words"]

AUTO_WORDS = (
    "the model's own words: assistant turns for conversations, the completion for prompt-completion "
    "rows, every token of plain text"
)
"""What ``loss("auto")`` trains, before the data is known."""

_EFFECTIVE = {
    "assistant_only": "assistant turns: replies, reasoning, tool calls and their end of turn",
    "completion_only": "the completion",
    "all": "every token",
}

_ROLE_WORDS = {
    "assistant": "assistant turns",
    "tool_call": "assistant turns that call a tool",
    "system": "system messages",
    "user": "user messages",
    "tool": "tool outputs",
}


def loss_words(loss: str, roles: Sequence[str] = ("assistant",), turns: str = "all") -> str:
    """What an ``effective_loss`` value (or several joined by ``" + "``) trains, in a short phrase.

    ``roles`` and ``turns`` are the recipe's ``LossSpec`` choices for conversations.
    """
    return "; ".join(_one(part.strip(), tuple(roles), turns) for part in loss.split("+"))


def _one(loss: str, roles: tuple[str, ...], turns: str) -> str:
    if loss != "assistant_only" or (roles == ("assistant",) and turns == "all"):
        return _EFFECTIVE.get(loss, loss)
    words = ", ".join(_ROLE_WORDS.get(role, role) for role in roles)
    return f"{words} (the last assistant turn only)" if turns == "last" else words
