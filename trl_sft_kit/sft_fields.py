"""The field names of TRL's ``SFTConfig``, known without importing TRL.

``SFTRecipe.training(...)`` checks its keys against these names so that a typo fails when the recipe is
built, not after a model has loaded, and so that building a recipe never imports torch or TRL. The
snapshot below was read off the ``SFTConfig`` of TRL ``SNAPSHOT_TRL_VERSION``. The live dataclass is read
instead when ``trl`` has already been imported (as it is once a recipe compiles), and when the installed
TRL is another version (asked of ``importlib.metadata``, which imports nothing): then TRL is imported to
read its own fields. A test keeps the snapshot in step with the TRL it was taken from.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import os
import sys
from importlib import metadata
from typing import Any

from trl_sft_kit.errors import RecipeError

__all__ = [
    "FIELD_ALIASES",
    "OWNED_FIELDS",
    "SNAPSHOT_TRL_VERSION",
    "coerce_field_value",
    "installed_trl_version",
    "resolve_training_fields",
    "sftconfig_fields",
]

SNAPSHOT_TRL_VERSION = "1.16.0"
"""The TRL whose ``SFTConfig`` ``_SNAPSHOT`` was read from; with any other installed TRL it is read live."""

# name -> the scalar kind a value is read as: for a field whose default is a plain scalar, the broadest
# scalar type its annotation takes ("str" over "float" over "int" over "bool"), so ``eval_delay: float = 0``
# is "float"; "" when the default is None or not a scalar (those values pass through unchanged).
_SNAPSHOT: dict[str, str] = {
    "accelerator_config": "",
    "activation_checkpointing": "",
    "activation_checkpointing_kwargs": "",
    "activation_offloading": "bool",
    "adam_beta1": "float",
    "adam_beta2": "float",
    "adam_epsilon": "float",
    "assistant_only_loss": "bool",
    "auto_find_batch_size": "bool",
    "average_tokens_across_devices": "bool",
    "batch_eval_metrics": "bool",
    "bf16": "",
    "bf16_full_eval": "bool",
    "chat_template_path": "",
    "completion_only_loss": "",
    "data_seed": "",
    "dataloader_drop_last": "bool",
    "dataloader_in_order": "bool",
    "dataloader_multiprocessing_context": "",
    "dataloader_num_workers": "int",
    "dataloader_persistent_workers": "bool",
    "dataloader_pin_memory": "bool",
    "dataloader_prefetch_factor": "",
    "dataset_kwargs": "",
    "dataset_num_proc": "",
    "dataset_text_field": "str",
    "ddp_backend": "",
    "ddp_broadcast_buffers": "",
    "ddp_bucket_cap_mb": "",
    "ddp_find_unused_parameters": "",
    "ddp_static_graph": "",
    "ddp_timeout": "int",
    "debug": "str",
    "deepspeed": "",
    "disable_tqdm": "",
    "do_eval": "bool",
    "do_predict": "bool",
    "do_train": "bool",
    "enable_jit_checkpoint": "bool",
    "eos_token": "",
    "eval_accumulation_steps": "",
    "eval_delay": "float",
    "eval_do_concat_batches": "bool",
    "eval_on_start": "bool",
    "eval_packing": "",
    "eval_steps": "",
    "eval_strategy": "str",
    "eval_use_gather_object": "bool",
    "fp16": "bool",
    "fp16_full_eval": "bool",
    "fsdp": "",
    "fsdp_config": "",
    "full_determinism": "bool",
    "gradient_accumulation_steps": "int",
    "gradient_checkpointing": "bool",
    "gradient_checkpointing_kwargs": "",
    "greater_is_better": "",
    "hub_always_push": "bool",
    "hub_model_id": "",
    "hub_private_repo": "",
    "hub_revision": "",
    "hub_strategy": "str",
    "hub_token": "",
    "ignore_data_skip": "bool",
    "include_for_metrics": "",
    "include_num_input_tokens_seen": "str",
    "label_names": "",
    "label_smoothing_factor": "float",
    "learning_rate": "float",
    "length_column_name": "str",
    "liger_kernel_config": "",
    "load_best_model_at_end": "bool",
    "local_rank": "int",
    "log_level": "str",
    "log_level_replica": "str",
    "log_on_each_node": "bool",
    "logging_first_step": "bool",
    "logging_nan_inf_filter": "bool",
    "logging_steps": "float",
    "logging_strategy": "str",
    "loss_type": "str",
    "lr_scheduler_kwargs": "",
    "lr_scheduler_type": "str",
    "max_grad_norm": "float",
    "max_length": "int",
    "max_steps": "int",
    "metric_for_best_model": "",
    "model_init_kwargs": "",
    "neftune_noise_alpha": "",
    "num_train_epochs": "float",
    "optim": "str",
    "optim_args": "",
    "optim_target_modules": "",
    "output_dir": "",
    "packing": "bool",
    "packing_strategy": "str",
    "pad_to_multiple_of": "str",
    "pad_token": "",
    "padding_free": "bool",
    "parallelism_config": "",
    "per_device_eval_batch_size": "int",
    "per_device_train_batch_size": "int",
    "prediction_loss_only": "bool",
    "project": "str",
    "push_to_hub": "bool",
    "remove_unused_columns": "bool",
    "report_to": "str",
    "restore_callback_states_from_checkpoint": "bool",
    "resume_from_checkpoint": "",
    "router_aux_loss_coef": "",
    "run_name": "",
    "save_on_each_node": "bool",
    "save_only_model": "bool",
    "save_steps": "float",
    "save_strategy": "str",
    "save_total_limit": "",
    "seed": "int",
    "shuffle_dataset": "bool",
    "skip_memory_metrics": "bool",
    "tf32": "",
    "torch_compile": "bool",
    "torch_compile_backend": "",
    "torch_compile_mode": "",
    "torch_empty_cache_steps": "",
    "trackio_bucket_id": "",
    "trackio_space_id": "",
    "trackio_static_space_id": "",
    "train_sampling_strategy": "str",
    "truncation_mode": "str",
    "trust_remote_code": "bool",
    "use_cache": "bool",
    "use_cpu": "bool",
    "use_liger_kernel": "bool",
    "warmup_steps": "float",
    "weight_decay": "float",
}

FIELD_ALIASES: dict[str, str] = {
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "eval_batch_size": "per_device_eval_batch_size",
    "lr": "learning_rate",
    "max_seq_length": "max_length",
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}
"""Friendly or older names accepted by ``training()`` and the SFTConfig fields they set."""

OWNED_FIELDS: dict[str, str] = {
    "packing": ".packing(strategy)",
    "packing_strategy": ".packing(strategy)",
    "eval_packing": ".packing(strategy, eval=True)",
    "neftune_noise_alpha": ".neftune(alpha)",
    "use_liger_kernel": ".liger()",
    "liger_kernel_config": ".liger()",
    "completion_only_loss": '.loss("completion_only")',
    "assistant_only_loss": '.loss("assistant_only")',
    "chat_template_path": ".chat_template(name_or_path)",
    "eos_token": ".tokens(eos=...)",
    "pad_token": ".tokens(pad=...)",
    "dataset_text_field": ".dataset(source, text_field=...)",
    "model_init_kwargs": ".model(..., dtype=..., attn_implementation=...)",
    "trust_remote_code": ".model(..., trust_remote_code=True)",
}
"""SFTConfig fields that a dedicated recipe method sets; ``training()`` refuses them and names the method."""


@functools.cache
def installed_trl_version() -> str | None:
    """The installed TRL's version from its metadata (nothing is imported), or None when TRL is missing."""
    try:
        return metadata.version("trl")
    except metadata.PackageNotFoundError:
        return None


def sftconfig_fields() -> dict[str, str]:
    """Return the SFTConfig field names and kinds (see ``_SNAPSHOT``).

    From TRL itself once it is imported, or when the installed TRL is not the version the snapshot was
    taken from (``SNAPSHOT_TRL_VERSION``): then TRL is imported here to read them.
    """
    trl = sys.modules.get("trl")
    if trl is None:
        installed = installed_trl_version()
        if installed is None or installed == SNAPSHOT_TRL_VERSION:
            return dict(_SNAPSHOT)
        try:
            trl = importlib.import_module("trl")
        except Exception:  # a broken TRL install; compile() reports it with its fix
            return dict(_SNAPSHOT)
    try:
        config_cls = getattr(trl, "SFTConfig", None)
    except Exception:  # a broken TRL install; compile() reports it with its fix
        return dict(_SNAPSHOT)
    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        return dict(_SNAPSHOT)
    fields: dict[str, str] = {}
    for field in dataclasses.fields(config_cls):
        if not field.init:
            continue
        default = field.default
        kind = type(default).__name__ if isinstance(default, (bool, int, float, str)) else ""
        fields[field.name] = _SNAPSHOT.get(field.name, kind) or kind
    return fields


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def resolve_training_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Map aliases onto SFTConfig names and check every name, raising one RecipeError for all bad ones.

    Args:
        fields: keyword arguments given to ``training()`` or read from a config.

    Returns:
        A new dict keyed by real SFTConfig field names.

    Raises:
        RecipeError: a name SFTConfig does not have (with the closest name), a field owned by a dedicated
            recipe method, an alias given together with the name it stands for, or a value of the wrong
            type (see ``coerce_field_value``).
    """
    known = sftconfig_fields()
    resolved: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in fields.items():
        target = FIELD_ALIASES.get(name, name)
        if target in OWNED_FIELDS:
            problems.append(
                f"training field {name!r} is set by {OWNED_FIELDS[target]}; use that method instead."
            )
            continue
        if target not in known:
            hint = _suggest(name, sorted(set(known) | set(FIELD_ALIASES)))
            problems.append(f"SFTConfig has no field {name!r}.{hint}")
            continue
        if target in resolved:
            problems.append(f"training field {target!r} is given twice (as {name!r} and under another name).")
            continue
        try:
            resolved[target] = coerce_field_value(target, value, kind=known[target])
        except RecipeError as exc:
            alias = f" ({name!r} stands for {target!r}.)" if name != target else ""
            problems.append(f"{exc}{alias}")
    if problems:
        raise RecipeError(" ".join(problems), problems=tuple(problems))
    return resolved


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce_field_value(name: str, value: Any, *, kind: str | None = None) -> Any:
    """Give a value the scalar type its SFTConfig field takes, reading strings from YAML or the command line.

    YAML 1.1 reads ``5e-5`` as a string, so ``learning_rate: 5e-5`` would otherwise reach TRL as text. A
    path becomes its string (so the recipe can be written to YAML); a whole float given to an int field
    becomes an int. Fields whose type is not a plain scalar, and ``None``, pass through unchanged.

    Args:
        name: the SFTConfig field.
        value: the value given.
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"`` or ``""``; looked up from ``name`` when omitted.

    Raises:
        RecipeError: the value cannot be read as the field's type (a bool or a list for a number, ``"fast"``
            for a learning rate, ``"maybe"`` for a flag).

    >>> coerce_field_value("learning_rate", "5e-5")
    5e-05
    >>> coerce_field_value("max_length", 512.0)
    512
    """
    kind = sftconfig_fields().get(name, "") if kind is None else kind
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or kind not in ("int", "float", "bool"):
        return value
    if isinstance(value, str):
        return _parse(name, value.strip(), kind, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise RecipeError(f"training field {name!r} takes true or false (got {value!r}).")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecipeError(f"training field {name!r} takes a number (got {value!r}).")
    if kind == "int" and isinstance(value, float):
        if not value.is_integer():
            raise RecipeError(f"training field {name!r} takes a whole number (got {value!r}).")
        return int(value)
    return value


def _parse(name: str, text: str, kind: str, given: str) -> Any:
    """Read ``text`` as an int, a float or a bool, for ``coerce_field_value``."""
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise RecipeError(f"training field {name!r} takes true or false (got {given!r}).")
    try:
        number = float(text)
    except ValueError:
        raise RecipeError(f"training field {name!r} takes a number (got {given!r}).") from None
    if kind == "int":
        if not number.is_integer():
            raise RecipeError(f"training field {name!r} takes a whole number (got {given!r}).")
        return int(text) if text.lstrip("+-").isdigit() else int(number)
    plain_int = number.is_integer() and "." not in text and "e" not in text.lower()
    return int(number) if plain_int else number
