"""peft's ``LoraConfig`` and transformers' ``BitsAndBytesConfig`` objects, read into the kit's specs.

``SFTRecipe.lora(LoraConfig(...))`` and ``SFTRecipe.quantize(BitsAndBytesConfig(...))`` take the objects
users already build for peft and transformers. They are recognised by class and module name, and read by
attribute, so ``import trl_sft_kit`` imports neither peft nor transformers: whoever passes one has them.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.specs import LoraSpec, QuantizationSpec

__all__ = ["is_bnb_config", "is_lora_config", "lora_spec_from", "quantization_spec_from"]

# LoraConfig fields the kit sets itself, or that describe a saved adapter rather than a new one
_LORA_SKIPPED = {
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "task_type",
    "peft_type",
    "base_model_name_or_path",
    "revision",
    "inference_mode",
    "auto_mapping",
    "peft_version",
}


def _is(value: Any, name: str, package: str) -> bool:
    cls = type(value)
    return cls.__name__ == name and cls.__module__.split(".")[0] == package


def is_lora_config(value: Any) -> bool:
    """Whether ``value`` is a ``peft.LoraConfig``."""
    return _is(value, "LoraConfig", "peft")


def is_bnb_config(value: Any) -> bool:
    """Whether ``value`` is a ``transformers.BitsAndBytesConfig``."""
    return _is(value, "BitsAndBytesConfig", "transformers")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def lora_spec_from(config: Any) -> LoraSpec:
    """The ``LoraSpec`` of a ``peft.LoraConfig``: r, alpha, dropout, target modules, and every other field
    set away from its default as an option.

    Raises:
        RecipeError: the config is for another task than causal language modelling.
    """
    task = _plain(getattr(config, "task_type", None))
    if task not in (None, "CAUSAL_LM"):
        raise RecipeError(
            f"lora() trains causal language models; the LoraConfig has task_type={task!r}. "
            "Use task_type='CAUSAL_LM' (or leave it unset)."
        )
    default = type(config)()
    options = {
        field.name: _plain(getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name not in _LORA_SKIPPED and getattr(config, field.name) != getattr(default, field.name)
    }
    target = _plain(config.target_modules)
    return LoraSpec(
        r=config.r,
        alpha=config.lora_alpha,
        dropout=config.lora_dropout,
        target_modules="all-linear" if target is None else target,
        options=options,
    )


_DTYPES = ("bfloat16", "float16", "float32")


def quantization_spec_from(config: Any) -> QuantizationSpec:
    """The ``QuantizationSpec`` of a ``transformers.BitsAndBytesConfig``.

    Raises:
        RecipeError: the config quantizes neither to 4 nor to 8 bits, or sets a field the kit does not
            carry (``llm_int8_threshold``, ...), which would otherwise be lost.
    """
    if getattr(config, "load_in_4bit", False):
        bits = "4bit"
    elif getattr(config, "load_in_8bit", False):
        bits = "8bit"
    else:
        raise RecipeError("quantize() got a BitsAndBytesConfig with neither load_in_4bit nor load_in_8bit.")
    default = type(config)(load_in_4bit=True) if bits == "4bit" else type(config)(load_in_8bit=True)
    carried = {"bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"}
    ignored = {"quant_method", "load_in_4bit", "load_in_8bit", "_load_in_4bit", "_load_in_8bit"}
    ours, theirs = config.to_dict(), default.to_dict()
    lost = sorted(k for k in ours if k not in carried | ignored and ours[k] != theirs.get(k))
    if lost:
        raise RecipeError(
            f"quantize() carries the quant type, double quantization and compute dtype of a "
            f"BitsAndBytesConfig, not {', '.join(map(repr, lost))}. Leave those at their defaults, or load "
            "the model yourself and pass it to .model()."
        )
    dtype = str(ours.get("bnb_4bit_compute_dtype") or "float32").removeprefix("torch.")
    if dtype not in _DTYPES:
        raise RecipeError(f"quantize() takes a compute dtype among {_DTYPES} (got {dtype!r}).")
    return QuantizationSpec(
        bits,
        quant_type=ours.get("bnb_4bit_quant_type", "nf4"),
        double_quant=bool(ours.get("bnb_4bit_use_double_quant", False)),
        compute_dtype=dtype,
    )
