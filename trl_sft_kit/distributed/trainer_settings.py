"""The trainer's settings for several processes: the ``SFTConfig`` fields for DDP, FSDP and DeepSpeed.

When ``accelerate launch`` already set FSDP or DeepSpeed up from its own configuration, ``sftconfig_fields``
leaves those to it, so the processes are never configured twice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.specs import DistributedSpec, thaw

__all__ = ["deepspeed_config", "fsdp_config", "sftconfig_fields"]


def fsdp_config(spec: DistributedSpec) -> dict[str, Any]:
    """The ``SFTConfig.fsdp_config`` for FSDP2 with the spec's options (transformers' key names).

    Activation checkpointing is FSDP's own (``activation_checkpointing: true``) unless the options say
    otherwise, since the trainer's flag adds a redundant all-gather under FSDP.

    >>> fsdp_config(DistributedSpec("fsdp", options={"cpu_offload": True}))["cpu_offload"]
    True
    """
    options = thaw(dict(spec.options))
    config: dict[str, Any] = {
        "version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "state_dict_type": "FULL_STATE_DICT",
        "reshard_after_forward": True,
        "cpu_ram_efficient_loading": True,
        "activation_checkpointing": True,
    }
    config.update({key: value for key, value in options.items() if key not in ("backend", "timeout")})
    return config


def deepspeed_config(spec: DistributedSpec) -> dict[str, Any]:
    """The DeepSpeed configuration for a ZeRO stage: ``"auto"`` wherever the trainer's settings decide.

    Batch sizes, gradient accumulation, clipping and precision follow the ``SFTConfig`` fields (the
    ``"auto"`` values of transformers' DeepSpeed integration); ``offload_optimizer`` / ``offload_param``
    move optimizer state or (ZeRO-3) parameters to ``"cpu"`` or ``"nvme"``; ``config`` is merged on top.

    >>> deepspeed_config(DistributedSpec("deepspeed_zero3"))["zero_optimization"]["stage"]
    3
    """
    stage = spec.zero_stage
    if stage is None:
        raise RecipeError(f"distributed({spec.kind!r}) is not a DeepSpeed kind.")
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    for option, key in (("offload_optimizer", "offload_optimizer"), ("offload_param", "offload_param")):
        device = spec.options.get(option)
        if device is not None:
            zero[key] = {"device": device, "pin_memory": True}
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
    }
    extra = spec.options.get("config")
    return _merged(config, thaw(dict(extra))) if extra else config


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def sftconfig_fields(
    spec: DistributedSpec, *, launched: str | None = None, user_fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``SFTConfig`` fields that set the trainer up for ``spec``.

    Args:
        spec: the recipe's choice.
        launched: what ``accelerate launch`` already set up (``launched_plugin()``): FSDP or DeepSpeed
            settings are then left to it.
        user_fields: the recipe's own training fields (``activation_checkpointing`` set there is kept).

    >>> sftconfig_fields(DistributedSpec("ddp", options={"find_unused_parameters": False}))
    {'ddp_find_unused_parameters': False}
    """
    fields: dict[str, Any] = {}
    options = spec.options
    if "backend" in options:
        fields["ddp_backend"] = options["backend"]
    if "timeout" in options:
        fields["ddp_timeout"] = options["timeout"]
    if spec.kind == "ddp":
        for option in ("find_unused_parameters", "static_graph", "bucket_cap_mb", "broadcast_buffers"):
            if option in options:
                fields[f"ddp_{option}"] = options[option]
    elif spec.kind == "fsdp" and launched != "fsdp":
        config = fsdp_config(spec)
        if "activation_checkpointing" in (user_fields or {}) and "activation_checkpointing" not in options:
            config["activation_checkpointing"] = False  # the user chose the trainer's own
        fields["fsdp"] = True
        fields["fsdp_config"] = config
        if config["activation_checkpointing"]:
            fields["activation_checkpointing"] = False  # FSDP's own checkpointing replaces the trainer's
    elif spec.is_deepspeed and launched != "deepspeed":
        fields["deepspeed"] = deepspeed_config(spec)
    return fields
