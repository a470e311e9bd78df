"""One converted source's training and evaluation rows, tokenized with the kit's loss masks.

``tokenize_source`` holds out the source's evaluation rows (``eval=N`` or a fraction, drawn from the data
seed), or converts the separate evaluation set it names (``eval=<dataset>``), then tokenizes both parts:
the training rows are truncated to ``max_length`` unless they are packed, the evaluation rows unless
``packing(eval=True)``. Every row keeps its place in the source, so an error or a report names its file
and line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.mixture import hold_out_rows
from trl_sft_kit.data.row_store import RowsView, is_lazy
from trl_sft_kit.data.settings import max_length_of, num_proc_of
from trl_sft_kit.data.source_conversion import ConvertedSource, convert_source
from trl_sft_kit.data.tokenize import TokenizationReport, tokenize_dataset

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.settings import DataSettings
    from trl_sft_kit.packing import Packer
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["TokenizedSource", "same_index", "tokenize_converted", "tokenize_source"]


@attrs.frozen
class TokenizedSource:
    """One source's training and evaluation rows, tokenized."""

    converted: ConvertedSource
    rows: Sequence[dict[str, Any]] = attrs.field(repr=False)
    train: Dataset = attrs.field(repr=False)
    tokenization: TokenizationReport
    eval: Dataset | None = attrs.field(default=None, repr=False)
    eval_tokenization: TokenizationReport | None = None
    eval_source: str | None = None


def tokenize_source(
    index: int,
    spec: DatasetSpec,
    source: ConvertedSource,
    settings: DataSettings,
    tokenizer: PreTrainedTokenizerBase,
    *,
    packer: Packer | None,
    pack_eval: bool,
    seed: int,
) -> TokenizedSource:
    """Hold out (or read) the source's evaluation rows and tokenize both parts."""
    rows = source.prepared.rows
    keep = list(range(len(rows)))
    eval_rows: Sequence[dict[str, Any]] = []
    eval_index: Callable[[int], int] = same_index
    eval_from: ConvertedSource | None = None
    if spec.holds_out:
        train_at, eval_at = hold_out_rows(len(rows), spec.eval, seed, index, source=source.report.source)
        keep = train_at.tolist()
        held = eval_at.tolist()
        eval_rows = _take(rows, held)
        eval_index = held.__getitem__
    elif spec.eval is not None:
        eval_from = convert_source(spec.eval_set(), settings, tokenizer)
        eval_rows = eval_from.prepared.rows
    train_rows = _take(rows, keep) if len(keep) != len(rows) else rows
    train, tokenization = tokenize_converted(
        train_rows,
        tokenizer,
        settings,
        source,
        truncate=packer is None,
        index=keep.__getitem__,
    )
    part = TokenizedSource(source, train_rows, train, tokenization)
    if eval_rows:
        kind = eval_from if eval_from is not None else source
        evaluated, eval_tokenization = tokenize_converted(
            eval_rows, tokenizer, settings, kind, truncate=not pack_eval, index=eval_index
        )
        part = attrs.evolve(
            part,
            eval=evaluated,
            eval_tokenization=eval_tokenization,
            eval_source=eval_from.report.source if eval_from is not None else None,
        )
    return part


def tokenize_converted(
    rows: Sequence[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    settings: DataSettings,
    source: ConvertedSource,
    *,
    truncate: bool,
    index: Callable[[int], int],
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize ``rows``; row ``i`` is ``source``'s converted row ``index(i)`` (for errors and reports)."""
    return tokenize_dataset(
        rows,
        tokenizer,
        canonical=source.report.canonical,
        loss=source.loss,
        turns=settings.loss_spec.turns,
        roles=settings.loss_spec.roles,
        max_length=max_length_of(settings),
        truncate=truncate,
        on_bad_rows=source.on_bad_rows,
        row_label=lambda at: source.label(index(at)),
        row_where=lambda at: source.where(index(at)),
        source=source.report.source,
        num_proc=num_proc_of(settings),
        special_tokens_in_text=source.special_tokens_in_text,
    )


def _take(rows: Sequence[dict[str, Any]], indices: list[int]) -> Sequence[dict[str, Any]]:
    """Rows ``indices`` of ``rows``: a view of rows kept on disk (read once, by the tokenizer), or a list."""
    return RowsView(rows, indices) if is_lazy(rows) else [rows[at] for at in indices]


def same_index(index: int) -> int:
    """Row ``index`` is the source's converted row ``index`` (nothing held out before it)."""
    return index
