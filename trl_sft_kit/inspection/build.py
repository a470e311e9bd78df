"""``inspect_recipe``: the ``InspectReport`` of a recipe, made by running the data stage without the model.

It runs the data stage ``compile()`` runs (``prepare_training_data``: read, detect, convert, tokenize with
the kit's loss masks) with the recipe's tokenizer and chat template, and never loads the model.
Tokenization runs without truncation, so lengths are measured before ``max_length`` cuts them, and what it
would cut is counted (``estimates.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.inspection.estimates import estimate_packing, estimate_truncation
from trl_sft_kit.inspection.rendering import render_row
from trl_sft_kit.inspection.report import InspectReport
from trl_sft_kit.inspection.values import LengthStats, PackingEstimate, RenderedRow

if TYPE_CHECKING:
    from datasets import Dataset

    from trl_sft_kit.data.pipeline import PreparedData
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["PACKING_SAMPLE", "STREAM_ROWS", "inspect_recipe"]

PACKING_SAMPLE = 20_000
"""TRL's packers (and plug-ins) run on at most this many sequences; more are sampled and said to be."""

STREAM_ROWS = 2_000
"""For streamed sources, the rows of the stream that are tokenized and measured."""


def inspect_recipe(
    recipe: SFTRecipe,
    rows: int = 5,
    *,
    packing_sample: int = PACKING_SAMPLE,
    stream_rows: int = STREAM_ROWS,
) -> InspectReport:
    """Prepare the recipe's data as ``compile()`` would, without the model, and report what training sees.

    Args:
        recipe: the recipe (it needs ``.dataset(...)``; the model, or ``$TRL_SFT_KIT_MODEL``, gives the
            tokenizer).
        rows: how many rows to render (the first ones).
        packing_sample: TRL's packers and plug-ins run on at most this many sequences (a seeded sample).
        stream_rows: for streamed sources, how many rows of the stream to measure.

    Raises:
        RecipeError: the recipe is inconsistent, or inconsistent with its data.
        DatasetError: the data cannot be read, detected or converted (file, row and field named).
        BackendError: the tokenizer cannot be loaded.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise RecipeError(f"'rows' must be a whole number >= 0 (got {rows!r}).")
    recipe.validate()
    from trl_sft_kit.compile import resolve_model
    from trl_sft_kit.data.pipeline import max_length_of, prepare_training_data
    from trl_sft_kit.data.tokenize import effective_loss, tokenize_row
    from trl_sft_kit.errors import RowError
    from trl_sft_kit.packing.rows import sequence_lengths
    from trl_sft_kit.tokenizer import apply_tokens, load_tokenizer

    model_spec, origin = resolve_model(recipe)
    from trl_sft_kit.vision.compile import is_vision_model

    if is_vision_model(model_spec):  # rows with images, rendered by the processor (trl_sft_kit.vision)
        from trl_sft_kit.vision.inspect import inspect_vision

        return inspect_vision(recipe, model_spec, origin, rows)
    tokenizer = load_tokenizer(model_spec, origin)
    apply_tokens(tokenizer, recipe)
    max_length = max_length_of(recipe)
    # Untruncated and unpacked: lengths are measured before max_length, and what it cuts is counted here.
    whole = attrs.evolve(
        recipe, packing_spec=None, training_fields={**recipe.training_fields, "max_length": None}
    )
    data = prepare_training_data(whole, tokenizer)
    notes = list(data.report.notes)
    if data.streamed:
        dataset = _head(data.dataset, stream_rows)
        notes.append(
            f"streamed: token lengths, truncation and packing are measured on the first {len(dataset):,} "
            "rows of the stream."
        )
    else:
        dataset = data.dataset
        if getattr(dataset, "_indices", None) is not None:  # rows selected from a larger table
            dataset = dataset.flatten_indices()
    lengths = sequence_lengths(dataset.data.table)

    shown = []
    for index, source, row in _pick_rows(data, rows):
        try:
            kind = _kind(row)
            conversational = kind != "prompt_completion" or isinstance(row.get("prompt"), list)
            loss = effective_loss(recipe.loss_spec.mode, kind, conversational=conversational)
            masked = tokenize_row(
                tokenizer, row, kind, loss, turns=recipe.loss_spec.turns, roles=recipe.loss_spec.roles
            )
        except (RowError, RecipeError) as exc:
            shown.append(RenderedRow(index, source, error=str(exc)))
            continue
        shown.append(render_row(tokenizer, index, source, masked, max_length))

    truncation = estimate_truncation(dataset, lengths, max_length, data.tokenization)
    packing: tuple[PackingEstimate, ...] = ()
    if max_length is not None:
        packing = estimate_packing(recipe, dataset, lengths, max_length, packing_sample)
    if data.tokenization.rows_without_trained_tokens:
        notes.append(
            f"{data.tokenization.rows_without_trained_tokens:,} rows have no token that carries loss; "
            "training drops them."
        )
    if data.tokenization.rows_with_special_tokens:
        notes.append(data.tokenization.special_tokens_line())
    if recipe.packing_spec is not None and recipe.packing_spec.overflow == "split" and truncation is not None:
        notes.append(
            "packing with overflow='split' splits rows longer than max_length instead of cutting them."
        )
    return InspectReport(
        model=model_spec.name,
        model_origin=origin,
        chat_template=recipe.tokens_spec.chat_template,
        has_chat_template=bool(tokenizer.chat_template),
        data=data.report,
        tokenization=data.tokenization,
        loss_mode=recipe.loss_spec.mode,
        rows=tuple(shown),
        lengths=LengthStats.of(lengths),
        truncation=truncation,
        packing=packing,
        packing_strategy=recipe.packing_spec.strategy if recipe.packing_spec is not None else None,
        eos_token=data.eos_token,
        notes=tuple(notes),
    )


def _pick_rows(data: PreparedData, count: int) -> list[tuple[int, str | None, dict[str, Any]]]:
    """The first rows, or in a mixture the first rows of each source in turn: ``(index, source, row)``."""
    shares = data.mixture.sources if data.mixture is not None else ()
    if len(shares) < 2 or sum(share.rows for share in shares) != len(data.rows):
        return [(index, None, row) for index, row in enumerate(data.rows[:count])]
    starts = list(itertools.accumulate((share.rows for share in shares), initial=0))
    picked: list[tuple[int, str | None, dict[str, Any]]] = []
    for index in range(max(share.rows for share in shares)):
        for share, start in zip(shares, starts, strict=False):
            if index < share.rows and len(picked) < count:
                picked.append((index, share.name, data.rows[start + index]))
        if len(picked) >= count:
            break
    return picked


def _kind(row: Mapping[str, Any]) -> str:
    """A canonical row's kind (sources of a mixture may differ)."""
    if "messages" in row:
        return "messages"
    return "prompt_completion" if "prompt" in row else "text"


def _head(stream: Any, count: int) -> Dataset:
    """The first ``count`` tokenized rows of a stream, as a Dataset."""
    from datasets import Dataset

    rows = list(itertools.islice(iter(stream), count))
    return Dataset.from_dict(
        {"input_ids": [list(r["input_ids"]) for r in rows], "labels": [list(r["labels"]) for r in rows]}
    )
