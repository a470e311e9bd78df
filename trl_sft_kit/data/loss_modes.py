"""What a recipe's loss mode means on each canonical kind of row (``effective_loss``)."""

from __future__ import annotations

from trl_sft_kit.errors import RecipeError

__all__ = ["LOSS_FOR_KIND", "effective_loss"]

LOSS_FOR_KIND = {
    "messages": {"auto": "assistant_only", "trl": "all", "all": "all", "assistant_only": "assistant_only"},
    "prompt_completion": {
        "auto": "completion_only",
        "trl": "completion_only",
        "completion_only": "completion_only",
        "all": "all",
        "assistant_only": "completion_only",
    },
    "text": {"auto": "all", "trl": "all", "all": "all"},
}
"""For each canonical kind, what a recipe's loss mode means on it (missing pairs are recipe errors)."""


def effective_loss(mode: str, canonical: str, *, conversational: bool = True) -> str:
    """What the loss is computed on for data of kind ``canonical`` under ``.loss(mode)``.

    ``auto`` is the model's own words: the assistant turns of conversations, the completion of
    prompt-completion rows, every token of plain text. ``trl`` follows TRL: the completion of
    prompt-completion rows, every token otherwise. ``assistant_only`` on conversational
    prompt-completion rows trains the completion's assistant turns.

    Raises:
        RecipeError: the mode cannot apply to that kind of data.
    """
    if mode == "assistant_only" and canonical == "prompt_completion" and not conversational:
        raise RecipeError(
            "loss 'assistant_only' needs conversational data, but the prompt/completion rows are plain "
            "strings; "
            "use loss('completion_only') or loss('auto')."
        )
    resolved = LOSS_FOR_KIND.get(canonical, {}).get(mode)
    if resolved is None:
        needs = {"completion_only": "prompt-completion data", "assistant_only": "conversational data"}.get(
            mode, ""
        )
        raise RecipeError(
            f"loss {mode!r} needs {needs}, but the data is {canonical!r} rows; use loss('all') or "
            "loss('auto'), "
            "or give data of the right kind."
        )
    return resolved
