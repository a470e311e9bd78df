"""Tokenizing canonical rows with the kit's own loss masks, and truncating with every cut counted.

The kit prepares the trainer's data itself (TRL's own preparation is skipped), so that the masks are
right on any chat template (``trl_sft_kit.data.masks``), truncation is counted, and packing is the kit's.
Each row becomes ``input_ids`` and ``labels`` (``-100`` where the loss must not look).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.loss_words import loss_words
from trl_sft_kit.data.masks import (
    IGNORE_INDEX,
    MaskedTokens,
    tokenize_conversation,
    tokenize_prompt_completion,
)
from trl_sft_kit.data.masks import tokenize_text as _tokenize_text
from trl_sft_kit.data.report import SkippedRow
from trl_sft_kit.errors import DatasetError, RecipeError, RowError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

__all__ = ["LOSS_FOR_KIND", "TokenizationReport", "effective_loss", "tokenize_dataset", "tokenize_row"]

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
        if self.rows_without_trained_tokens:
            lines.append(f"  {self.rows_without_trained_tokens} rows dropped: no token carries loss")
        lines += [f"  skipped {row}" for row in self.skipped[:10]]
        return "\n".join(lines)


def tokenize_row(
    tokenizer: PreTrainedTokenizerBase,
    row: Mapping[str, Any],
    canonical: str,
    loss: str,
    *,
    turns: str = "all",
    roles: Sequence[str] = ("assistant",),
) -> MaskedTokens:
    """Tokenize one canonical row and label it for ``loss`` (an ``effective_loss`` value); ``turns`` and
    ``roles`` choose the messages of conversations trained under ``assistant_only``."""
    if canonical == "messages":
        masked = tokenize_conversation(
            tokenizer,
            row["messages"],
            tools=row.get("tools"),
            turns=turns,  # type: ignore[arg-type]
            roles=roles,
        )
    elif canonical == "prompt_completion":
        masked = tokenize_prompt_completion(
            tokenizer, row["prompt"], row["completion"], tools=row.get("tools")
        )
    elif canonical == "text":
        masked = _tokenize_text(tokenizer, row["text"])
    else:
        raise RowError(f"unknown canonical row kind {canonical!r}.")
    if loss == "all":
        return attrs.evolve(masked, labels=list(masked.input_ids))
    return masked


def tokenize_dataset(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    canonical: str,
    loss: str,
    turns: str = "all",
    roles: Sequence[str] = ("assistant",),
    max_length: int | None = None,
    truncate: bool = True,
    on_bad_rows: str = "error",
    row_label: Callable[[int], str] = lambda index: f"row {index}",
    source: str = "the dataset",
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize every row with its labels; truncate to ``max_length`` (when ``truncate``), counting cuts.

    A row left with no token that carries loss (every assistant turn flagged ``train: false``, or every
    such token beyond ``max_length``) is dropped and counted, never silently.

    Args:
        dataset: canonical rows (``messages``, ``prompt``/``completion`` or ``text``).
        tokenizer: the tokenizer, with its chat template for conversational rows.
        canonical: the rows' kind.
        loss: an ``effective_loss`` value: ``all``, ``completion_only`` or ``assistant_only``.
        turns: ``all`` or ``last`` assistant turns, for ``assistant_only``.
        roles: the roles trained under ``assistant_only`` (``LossSpec.roles``).
        max_length: the longest row; ``None`` for no limit.
        truncate: cut rows to ``max_length`` here (off when a packer handles long rows).
        on_bad_rows: ``error`` or ``skip`` rows the template cannot render.
        row_label: names row ``i`` in errors (``file.jsonl, line 12``).
        source: names the source in a dataset-level error.

    Returns:
        A Dataset with ``input_ids`` and ``labels``, and the report.
    """
    from datasets import Dataset

    input_ids: list[list[int]] = []
    labels: list[list[int]] = []
    skipped: list[SkippedRow] = []
    counts = {"truncated": 0, "cut": 0, "no_loss": 0, "all_cut": 0}
    for index, row in enumerate(progress(dataset, "tokenizing")):
        try:
            masked = tokenize_row(tokenizer, row, canonical, loss, turns=turns, roles=roles)
        except RowError as exc:
            if on_bad_rows == "skip":
                skipped.append(SkippedRow(row_label(index), exc.field, exc.reason))
                continue
            raise RowError(exc.reason, field=exc.field, path=row_label(index)) from None
        ids, labs = masked.input_ids, masked.labels
        if not any(label != IGNORE_INDEX for label in labs):
            counts["no_loss"] += 1
            continue
        if truncate and max_length is not None and len(ids) > max_length:
            counts["truncated"] += 1
            counts["cut"] += len(ids) - max_length
            ids, labs = ids[:max_length], labs[:max_length]
            if not any(label != IGNORE_INDEX for label in labs):
                counts["all_cut"] += 1
                continue
        input_ids.append(ids)
        labels.append(labs)
    report = TokenizationReport(
        loss=loss,
        rows_in=len(dataset),
        rows_out=len(input_ids),
        tokens=sum(map(len, input_ids)),
        trained_tokens=sum(sum(label != IGNORE_INDEX for label in labs) for labs in labels),
        max_length=max_length if truncate else None,
        rows_truncated=counts["truncated"],
        tokens_truncated=counts["cut"],
        rows_without_trained_tokens=counts["no_loss"],
        rows_all_trained_tokens_cut=counts["all_cut"],
        skipped=tuple(skipped),
        roles=roles,
        turns=turns,
    )
    if not input_ids:
        raise DatasetError(
            f"{source}: no row is left to train on after tokenization.\n{report.summary()}\n"
            "Raise max_length, or check the loss settings and per-turn 'train' flags.",
            path=source,
        )
    return Dataset.from_dict({"input_ids": input_ids, "labels": labels}), report


PROGRESS_MIN_ROWS = 1000
"""Data stages show a progress bar from this many rows on (and only on a terminal or in a notebook)."""


def progress(rows: Sized, desc: str) -> Any:
    """``rows`` wrapped in a tqdm progress bar when there are enough of them for it to matter.

    The bar goes to stderr, only on a terminal or in a notebook (``disable=None``), and is removed when
    done; ``TQDM_DISABLE=1`` turns every bar off.
    """
    from tqdm.auto import tqdm

    return tqdm(
        rows,
        desc=desc,
        unit="row",
        leave=False,
        disable=None if len(rows) >= PROGRESS_MIN_ROWS else True,
    )
