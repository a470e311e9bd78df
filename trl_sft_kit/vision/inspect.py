"""``recipe.inspect()`` for a vision-language model: rows rendered with their image placeholders.

The rows are collated one at a time by the collator training uses, so the report shows what the model sees:
the chat template's text with each image's placeholder tokens (``<image>`` repeated as many times as the
processor expands it), which tokens carry loss (never an image token), and how many image tokens each row
holds. Only the processor is loaded, never the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trl_sft_kit.data.masks import MaskedTokens
from trl_sft_kit.specs import ModelSpec
from trl_sft_kit.vision.compile import (
    collate_rows,
    load_processor,
    refuse_what_vision_cannot_do,
    vision_collator,
    vision_loss,
)
from trl_sft_kit.vision.data import prepare_vision_data

if TYPE_CHECKING:
    from trl_sft_kit.inspection import InspectReport
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["inspect_vision"]


def inspect_vision(recipe: SFTRecipe, model_spec: ModelSpec, origin: str, rows: int) -> InspectReport:
    """The ``InspectReport`` of a vision recipe (see the module docstring); ``rows`` rows are rendered.

    Raises:
        RecipeError: what vision rows cannot do yet (packing, with the reason, ...).
        RowError: a bad vision row (file, row, field).
    """
    from trl_sft_kit.data.pipeline import max_length_of
    from trl_sft_kit.inspection import InspectReport, LengthStats
    from trl_sft_kit.inspection.rendering import render_row

    refuse_what_vision_cannot_do(recipe)
    (spec,) = recipe.dataset_specs
    processor = load_processor(model_spec, recipe)
    max_length = max_length_of(recipe)
    prepared, report = prepare_vision_data(spec)
    collator = vision_collator(recipe, processor, max_length, report.canonical)
    result = collate_rows(
        prepared,
        collator,
        loss=vision_loss(recipe, report.canonical),
        max_length=max_length,
        on_bad_rows=spec.on_bad_rows,
        roles=recipe.loss_spec.roles,
        turns=recipe.loss_spec.turns,
    )
    prepared, collated = result.rows, result.tokens
    tokenizer = processor.tokenizer
    shown = tuple(
        render_row(tokenizer, index, None, MaskedTokens(ids, labels), max_length)
        for index, (ids, labels) in enumerate(collated[:rows])
    )
    image_id = collator.image_token_id
    notes = list(report.notes)
    if image_id is not None:
        counts = [sum(1 for token in ids if token == image_id) for ids, _ in collated]
        token = tokenizer.convert_ids_to_tokens(image_id)
        per_row = ", ".join(
            f"row {index}: {len(prepared[index]['images'])} images, {count} image tokens"
            for index, count in enumerate(counts[:rows])
        )
        notes.append(
            f"image tokens ({token!r}, never trained): {sum(counts):,} in {len(counts):,} rows; {per_row}"
        )
    return InspectReport(
        model=model_spec.name,
        model_origin=origin,
        chat_template=recipe.tokens_spec.chat_template,
        has_chat_template=True,
        data=report,
        tokenization=result.report,
        loss_mode=recipe.loss_spec.mode,
        rows=shown,
        lengths=LengthStats.of([len(ids) for ids, _ in collated]),
        truncation=None,
        notes=tuple(notes),
    )
