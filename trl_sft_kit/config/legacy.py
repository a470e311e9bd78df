"""The older pipeline stage's flat keys (``dataset_name_or_path``, ``max_seq_length``, ``lora_r``,
``use_4bit``, ``packing_strategy``, ...), and ``stage_configs: {trl_sft: {...}}`` unwrapped into its stage.

``LEGACY_KEYS`` says what each flat key sets. The LoRA, quantization and loss settings are read here from both
forms, since their flat keys and their sections combine (``lora: {r: 8}`` beside ``lora_alpha: 16``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trl_sft_kit.config.values import _call, _expect, _flag, _number, _section
from trl_sft_kit.errors import ConfigError

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

LEGACY_KEYS: dict[str, str] = {
    "model_name_or_path": "model source",
    "dataset_name_or_path": "dataset source",
    "dataset_text_field": "dataset text_field",
    "max_seq_length": "training max_length",
    "lora_r": "lora r",
    "lora_alpha": "lora alpha",
    "lora_dropout": "lora dropout",
    "lora_target_modules": "lora target_modules",
    "use_lora": "lora on/off",
    "use_4bit": "quantization 4bit",
    "use_8bit": "quantization 8bit",
    "bnb_4bit_quant_type": "quantization quant_type",
    "bnb_4bit_compute_dtype": "quantization compute_dtype",
    "bnb_4bit_use_double_quant": "quantization double_quant",
    "use_nested_quant": "quantization double_quant",
    "packing": "packing on/off",
    "packing_strategy": "packing strategy",
    "completion_only_loss": "loss",
    "assistant_only_loss": "loss",
    "neftune_noise_alpha": "neftune alpha",
    "use_liger_kernel": "liger",
    "chat_template_path": "chat_template",
    "eos_token": "tokens eos",
    "pad_token": "tokens pad",
    "stage_name": "ignored (the stage's name in a pipeline)",
}
"""Flat SFT-stage keys and what each sets; every other flat key must be an ``SFTConfig`` field."""

_STAGE_NAMES = ("trl_sft", "sft")


def _unwrap_stage(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "stage_configs" not in data:
        return data
    stages = data["stage_configs"]
    if not isinstance(stages, Mapping):
        raise ConfigError("'stage_configs' must map stage names to their settings.", key="stage_configs")
    for name in _STAGE_NAMES:
        if name in stages:
            extra = [key for key in data if key not in ("stages", "stage_configs")]
            inner = dict(_expect(stages[name] or {}, Mapping, f"stage_configs.{name}"))
            for key in extra:  # pipeline-level settings (output_dir, model_name_or_path) apply to the stage
                inner.setdefault(key, data[key])
            return inner
    raise ConfigError(
        f"'stage_configs' has no 'trl_sft' stage (it has {', '.join(map(repr, stages)) or 'none'}).",
        key="stage_configs",
    )


_LORA_KEYS = {
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "lora_target_modules": "target_modules",
}


def _lora_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    lora: dict[str, Any] | None = None
    keys: dict[str, str] = {}
    if "lora" in data and data["lora"] is not None and data["lora"] is not False:
        lora = {} if data["lora"] is True else _section(data, "lora")
        options = lora.pop("options", None) or {}
        lora.update(_expect(options, Mapping, "lora.options"))
        keys = {name: f"lora.{name}" for name in lora}
    given = {new: data[old] for old, new in _LORA_KEYS.items() if data.get(old) is not None}
    keys.update({new: old for old, new in _LORA_KEYS.items() if data.get(old) is not None})
    use_lora = data.get("use_lora")
    if use_lora is not None:
        _expect(use_lora, bool, "use_lora")
    if given or use_lora:
        lora = {**(lora or {}), **given}
    if use_lora is False:
        lora = None
    if lora is None:
        return recipe
    for name, whole in (("r", True), ("alpha", False), ("dropout", False)):
        if name in lora:
            lora[name] = _number(lora[name], keys.get(name, f"lora.{name}"), whole=whole)
    return _call(recipe.lora, "lora", keys=keys, **lora)


_BNB_KEYS = (
    ("bnb_4bit_quant_type", "quant_type"),
    ("bnb_4bit_compute_dtype", "compute_dtype"),
    ("bnb_4bit_use_double_quant", "double_quant"),
    ("use_nested_quant", "double_quant"),
)


def _quantization_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    quant: dict[str, Any] | None = None
    keys: dict[str, str] = {}
    if "quantization" in data and data["quantization"] is not None:
        value = data["quantization"]
        quant = {"mode": value} if isinstance(value, (str, int)) else _section(data, "quantization")
        keys = {name: f"quantization.{name}" for name in quant}
    use_4bit, use_8bit = _flag(data, "use_4bit"), _flag(data, "use_8bit")
    if use_4bit and use_8bit:
        raise ConfigError("use_4bit and use_8bit are both true; choose one.", key="use_4bit")
    if use_4bit or use_8bit:
        quant = {**(quant or {}), "mode": "4bit" if use_4bit else "8bit"}
        for old, new in _BNB_KEYS:
            if data.get(old) is not None:
                quant[new], keys[new] = data[old], old
    if quant is None:
        return recipe
    mode = quant.pop("mode", None) or quant.pop("bits", None)
    if mode is None:
        raise ConfigError("the 'quantization' section needs 'mode': '4bit' or '8bit'.", key="quantization")
    return _call(recipe.quantize, "quantization", mode, keys=keys, **quant)


def _loss_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    if isinstance(data.get("loss"), Mapping):
        options = dict(data["loss"])
        mode = options.pop("mode", "auto")
        return _call(
            recipe.loss,
            "loss",
            _expect(mode, str, "loss.mode"),
            keys={name: f"loss.{name}" for name in options},
            **options,
        )
    if data.get("loss") is not None:
        return _call(recipe.loss, "loss", _expect(data["loss"], str, "loss"))
    completion = data.get("completion_only_loss")
    assistant = _flag(data, "assistant_only_loss")
    if completion is not None:
        _expect(completion, bool, "completion_only_loss")
    if assistant and completion:
        raise ConfigError(
            "completion_only_loss and assistant_only_loss are both true; keep the one that matches the data "
            "(assistant_only_loss for chat data).",
            key="completion_only_loss",
        )
    if assistant:
        return recipe.loss("assistant_only")
    if completion is True:
        return recipe.loss("completion_only")
    if completion is False:
        return recipe.loss("all")
    if data.get("assistant_only_loss") is False:  # said outright: TRL's default, as before auto changed
        return recipe.loss("trl")
    return recipe
