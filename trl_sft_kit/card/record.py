"""The record of a finished run as plain data: what ``run.json`` holds and the model card is made from.

The base model, metrics, losses, steps, what the data became (format, row counts, tokens carrying loss,
packing), the data fingerprint, the adapter and quantization settings and the library versions.
"""

from __future__ import annotations

import datetime
import enum
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.specs import spec_to_dict, thaw

if TYPE_CHECKING:
    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.result import TrainResult

__all__ = ["RUN_FORMAT", "is_hub_id", "library_versions", "run_info"]

RUN_FORMAT = 1
"""Version of the ``run.json`` layout."""

_DISTRIBUTIONS = (
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("trl", "trl"),
    ("peft", "peft"),
    ("datasets", "datasets"),
    ("trl_sft_kit", "trl-sft-kit"),
    ("accelerate", "accelerate"),
    ("bitsandbytes", "bitsandbytes"),
    ("huggingface_hub", "huggingface_hub"),
)
_TRAINING_KEYS = (
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "optim",
    "weight_decay",
    "bf16",
    "fp16",
    "seed",
)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a run depends on; a missing optional one is left out."""
    versions = {"python": platform.python_version()}
    for name, distribution in _DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_info(
    compiled: Compiled,
    result: TrainResult,
    *,
    recipe_file: str | None,
    recipe_note: str,
    fingerprint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a finished run as plain data (what ``run.json`` holds and the card is made from).

    ``fingerprint`` is the data fingerprint (``trl_sft_kit.runs.data_fingerprint``): a SHA-256 of the
    tokens and labels trained on, and of the source files.
    """
    recipe = compiled.recipe
    model = recipe.model_spec
    tokenizer = result.tokenizer
    report = compiled.report
    config = compiled.config
    training = {key: _plain(getattr(config, key, None)) for key in _TRAINING_KEYS}
    quantization = None
    if recipe.quantization_spec is not None:
        quantization = {"mode": recipe.quantization_spec.mode, **spec_to_dict(recipe.quantization_spec)}
    return {
        "format_version": RUN_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(result.output_dir),
        "base_model": compiled.model_name,
        "model": {
            "dtype": model.dtype if model is not None else "auto",
            "revision": model.revision if model is not None else None,
            "trust_remote_code": model.trust_remote_code if model is not None else False,
            "loaded_object": bool(model is not None and model.is_loaded),
        },
        "kind": "lora" if result.adapter_path is not None else "full",
        "global_step": result.global_step,
        "metrics": {key: _plain(value) for key, value in result.metrics.items()},
        "losses": list(result.losses),
        "recipe_file": recipe_file,
        "recipe_note": recipe_note,
        "data": {
            "source": report.source,
            "format": report.format,
            "canonical": report.canonical,
            "detection": report.detection,
            "rows_read": report.rows_read,
            "rows_kept": report.rows_kept,
            "rows_skipped": len(report.skipped),
            "rows_bad": report.rows_bad,
            "rows_excluded": report.rows_excluded,
            "skipped_by_field": report.skipped_by_field(),
            "notes": list(report.notes),
            "media_rows": report.media_rows,
            "media_dropped": dict(report.media_dropped),
        },
        "hub_datasets": _hub_datasets(recipe),
        "license": None,  # the trained model's licence, when known: the card's `license` field
        "data_fingerprint": _plain(dict(fingerprint)) if fingerprint is not None else None,
        "tokenization": {
            key: _plain(value)
            for key, value in spec_to_dict(compiled.tokenization).items()
            if key != "skipped"
        },
        "loss": {
            "mode": recipe.loss_spec.mode,
            "turns": recipe.loss_spec.turns,
            "roles": list(recipe.loss_spec.roles),
        },
        "packing": (
            {**spec_to_dict(compiled.packing), "summary": compiled.packing.summary()}
            if compiled.packing is not None
            else None
        ),
        "lora": spec_to_dict(recipe.lora_spec) if recipe.lora_spec is not None else None,
        "quantization": quantization,
        "neftune": recipe.neftune_spec.alpha if recipe.neftune_spec is not None else None,
        "liger": recipe.liger_enabled,
        "chat_template": recipe.tokens_spec.chat_template,
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "eos_token": getattr(tokenizer, "eos_token", None),
        "training": training,
        "data_summary": result.data_summary,
        "versions": library_versions(),
    }


def _hub_datasets(recipe: SFTRecipe) -> list[str]:
    """The Hub dataset ids the recipe trains (and evaluates) on, for the card's ``datasets`` field."""
    from trl_sft_kit.data.sources import SUPPORTED_SUFFIXES

    found: list[str] = []
    for spec in recipe.dataset_specs:
        for source in (spec.source, spec.eval):
            if (
                isinstance(source, str)
                and not source.lower().endswith(SUPPORTED_SUFFIXES)
                and is_hub_id(source)
                and source not in found
            ):
                found.append(source)
    return found


def _plain(value: Any) -> Any:
    """A value JSON can hold: numbers, strings, booleans, None, lists and dicts; anything else as text."""
    value = thaw(value)
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is a Hub model id (``data.sources.is_hub_id``, the Hub's rule), not a local folder."""
    from trl_sft_kit.data.sources import is_hub_id as hub_id_shaped

    return hub_id_shaped(name) and not Path(name).expanduser().exists()
