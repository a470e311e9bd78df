"""What a training run produced, and what to do with it next."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["TrainResult"]


@attrs.frozen
class TrainResult:
    """What ``train()`` produced.

    Attributes:
        metrics: the trainer's final metrics (``train_loss``, ``train_runtime``, ...).
        output_dir: where everything was written.
        adapter_path: the folder holding ``adapter_model.safetensors`` when LoRA was used, else None.
        model_path: the folder holding the full model when no adapter was trained, else None.
        losses: the logged training losses, in order.
        global_step: optimisation steps taken.
        recipe: the recipe that was trained.
        base_model: the base model's name or path.
        data_summary: what the data became (format, rows, tokens, truncation, packing).
        model: the trained model in memory (a ``PeftModel`` with LoRA), for the next step of a pipeline.
        tokenizer: the tokenizer it was trained with.
    """

    metrics: dict[str, float]
    output_dir: Path
    adapter_path: Path | None
    model_path: Path | None
    losses: tuple[float, ...]
    global_step: int
    recipe: SFTRecipe | None = attrs.field(default=None, repr=False)
    base_model: str = ""
    data_summary: str = attrs.field(default="", repr=False)
    model: Any = attrs.field(default=None, eq=False, repr=False)
    tokenizer: Any = attrs.field(default=None, eq=False, repr=False)
