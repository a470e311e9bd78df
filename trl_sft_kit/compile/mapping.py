"""The pure part of compiling: which model a recipe trains (the recipe, ``$TRL_SFT_KIT_MODEL`` or the
default) and the ``SFTConfig`` keyword arguments it produces, with nothing heavy imported."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trl_sft_kit.specs import ModelSpec, thaw
from trl_sft_kit.tokenizer import MODEL_ENV

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["DEFAULT_MODEL", "DEFAULT_OUTPUT_DIR", "config_kwargs", "fallback_model_note", "resolve_model"]

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_OUTPUT_DIR = "outputs/trl_sft"


def resolve_model(recipe: SFTRecipe) -> tuple[ModelSpec, str]:
    """The model spec to use and where it came from: the recipe, ``$TRL_SFT_KIT_MODEL``, or the default."""
    if recipe.model_spec is not None:
        return recipe.model_spec, "the recipe"
    from_env = os.environ.get(MODEL_ENV, "").strip()
    if from_env:
        return ModelSpec(from_env), f"${MODEL_ENV}"
    return ModelSpec(DEFAULT_MODEL), "the default"


def fallback_model_note(spec: ModelSpec, origin: str) -> str:
    """The line that names the model trained when the recipe has no ``.model()``: in explain() and the log."""
    return (
        f"no .model() in the recipe: training {spec.name} ({origin}). Choose the model with "
        f".model(...) or ${MODEL_ENV}."
    )


def config_kwargs(
    recipe: SFTRecipe,
    *,
    bf16_capable: bool | None = None,
    accelerator: bool | None = None,
    launched: str | None = None,
) -> dict[str, Any]:
    """The ``SFTConfig`` keyword arguments a recipe produces (pure: imports nothing heavy).

    With evaluation data (``eval=`` on a source) and no ``eval_strategy`` in the recipe, the trainer
    evaluates at the end of every epoch (``eval_strategy="epoch"``); ``.distributed(...)`` adds the
    fields that set the processes up (``trl_sft_kit.distributed.sftconfig_fields``).

    Args:
        recipe: the recipe.
        bf16_capable: whether the device can train in bf16; when known and the recipe sets neither
            ``bf16`` nor ``fp16``, bf16 follows it (TRL's default of bf16=True fails on a CPU).
        accelerator: whether a GPU is present; without one, pinned memory is turned off (it only warns).
        launched: ``"fsdp"`` or ``"deepspeed"`` when ``accelerate launch`` set that up itself
            (``trl_sft_kit.distributed.launched_plugin()``); the recipe's FSDP or DeepSpeed fields are
            then left out.
    """
    kwargs: dict[str, Any] = {"output_dir": DEFAULT_OUTPUT_DIR, "report_to": "none"}
    kwargs.update(thaw(dict(recipe.training_fields)))
    # The kit tokenizes, masks, truncates and packs the data itself (trl_sft_kit.data), so TRL's own
    # preparation is skipped and its loss flags stay at their defaults: the labels already say it all.
    kwargs["dataset_kwargs"] = {**dict(kwargs.get("dataset_kwargs") or {}), "skip_prepare_dataset": True}
    if recipe.packing_spec is not None:
        from trl_sft_kit.packing import get_packer

        packer = get_packer(recipe.packing_spec.strategy)
        kwargs["packing"] = True
        kwargs["packing_strategy"] = getattr(packer, "trl_strategy", packer.name)
        kwargs["eval_packing"] = recipe.packing_spec.eval
        # Rows packed without crossing boundaries carry `seq_lengths`; the padding-free collator turns them
        # into position ids that restart at every sequence, so no attention crosses a boundary.
        kwargs["padding_free"] = not packer.crosses_boundaries
    if recipe.neftune_spec is not None:
        kwargs["neftune_noise_alpha"] = float(recipe.neftune_spec.alpha)
    if recipe.liger_enabled:
        init = dict(kwargs.get("model_init_kwargs") or {})
        init["use_kernels"] = True
        kwargs["model_init_kwargs"] = init
    if recipe.tokens_spec.eos is not None:
        kwargs["eos_token"] = recipe.tokens_spec.eos
    kwargs["dataset_text_field"] = "text"  # canonical text rows always use "text"
    if any(spec.eval is not None for spec in recipe.dataset_specs):
        kwargs.setdefault("eval_strategy", "epoch")
    if recipe.distributed_spec is not None:
        from trl_sft_kit.distributed import sftconfig_fields

        fields = sftconfig_fields(
            recipe.distributed_spec, launched=launched, user_fields=recipe.training_fields
        )
        for key, value in fields.items():
            kwargs.setdefault(key, value)
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; TRL still sets the old name
    # to True, which warns. Passing the new name keeps TRL's default without the warning.
    kwargs.setdefault("activation_checkpointing", True)
    if bf16_capable is not None and "bf16" not in kwargs and "fp16" not in kwargs:
        kwargs["bf16"] = bf16_capable
    if accelerator is False:
        kwargs.setdefault("dataloader_pin_memory", False)
    return kwargs
