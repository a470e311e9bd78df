"""A recipe as plain data in the kit's own layout (``recipe_to_dict``): only the options that are set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trl_sft_kit.errors import ConfigError
from trl_sft_kit.specs import DatasetSpec, InlineRows, spec_to_dict, thaw

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe


def recipe_to_dict(recipe: SFTRecipe) -> dict[str, Any]:
    """Plain data for ``recipe``, in the kit's own layout; only options that are set are written."""
    data: dict[str, Any] = {}
    model = recipe.model_spec
    if model is not None:
        if model.is_loaded or (model.tokenizer is not None and not isinstance(model.tokenizer, str)):
            raise ConfigError(
                "a recipe holding a loaded model or tokenizer cannot be written to a file; save the model "
                "with save_pretrained() and pass its folder to .model().",
                key="model",
            )
        model_section = _non_default(spec_to_dict(model), _MODEL_DEFAULTS)
        init_kwargs = model_section.pop("init_kwargs", {})
        if init_kwargs:  # from_pretrained keyword arguments, under TRL's name for them
            model_section["model_init_kwargs"] = init_kwargs
        data["model"] = model_section
    sections = [_dataset_section(spec) for spec in recipe.dataset_specs]
    if sections:
        data["dataset"] = sections[0] if len(sections) == 1 else sections
    if recipe.lora_spec is not None:
        data["lora"] = spec_to_dict(recipe.lora_spec)
    if recipe.quantization_spec is not None:
        quant = spec_to_dict(recipe.quantization_spec)
        quant["mode"] = recipe.quantization_spec.mode
        del quant["bits"]
        data["quantization"] = quant
    if recipe.packing_spec is not None:
        packing = recipe.packing_spec
        if packing.overflow is None and packing.eval:
            data["packing"] = packing.strategy
        else:
            data["packing"] = _non_default(spec_to_dict(packing), {"overflow": None, "eval": True})
    if recipe.neftune_spec is not None:
        data["neftune"] = recipe.neftune_spec.alpha
    if recipe.liger_enabled:
        data["liger"] = True
    if recipe.loss_spec.turns != "all" or recipe.loss_spec.roles != ("assistant",):
        data["loss"] = spec_to_dict(recipe.loss_spec)
    elif recipe.loss_spec.mode != "auto":
        data["loss"] = recipe.loss_spec.mode
    if recipe.tokens_spec.chat_template is not None:
        data["chat_template"] = recipe.tokens_spec.chat_template
    tokens = {
        key: value
        for key, value in (("eos", recipe.tokens_spec.eos), ("pad", recipe.tokens_spec.pad))
        if value is not None
    }
    if tokens:
        data["tokens"] = tokens
    if recipe.training_fields:
        data["training"] = thaw(dict(recipe.training_fields))
    spec = recipe.distributed_spec
    if spec is not None:
        if spec.num_processes is None and spec.num_machines == 1 and not spec.options:
            data["distributed"] = spec.kind
        else:
            section: dict[str, Any] = {"kind": spec.kind}
            if spec.num_processes is not None:
                section["num_processes"] = spec.num_processes
            if spec.num_machines != 1:
                section["num_machines"] = spec.num_machines
            section.update(thaw(dict(spec.options)))
            data["distributed"] = section
    if recipe.cache_enabled is not None:
        data["cache"] = recipe.cache_enabled
    return data


def _dataset_section(spec: DatasetSpec) -> dict[str, Any]:
    """One source as plain data: ``source`` (or ``rows``), and every option that is not the default."""
    if not spec.is_serialisable:
        raise ConfigError(
            "a recipe holding a datasets.Dataset cannot be written to a file; save it with "
            "dataset.to_json('data.jsonl') and pass that path to .dataset().",
            key="dataset",
        )
    section = _non_default(spec_to_dict(spec), _DATASET_DEFAULTS)
    if isinstance(spec.source, InlineRows):
        section.pop("source")
        section["rows"] = spec.source.to_list()
    if isinstance(spec.eval, InlineRows):
        del section["eval"]
        section["eval_rows"] = spec.eval.to_list()
    return section


_MODEL_DEFAULTS: dict[str, Any] = {
    "tokenizer": None,
    "dtype": "auto",
    "attn_implementation": None,
    "trust_remote_code": False,
    "revision": None,
    "init_kwargs": {},
}
_DATASET_DEFAULTS = {
    "format": "auto",
    "split": "train",
    "text_field": "text",
    "columns": None,
    "on_bad_rows": "error",
    "weight": None,
    "count": None,
    "eval": None,
    "streaming": False,
    "media": "auto",
    "special_tokens_in_text": "warn",
    "config": None,
    "revision": None,
}


def _non_default(section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in section.items() if key not in defaults or value != defaults[key]}
