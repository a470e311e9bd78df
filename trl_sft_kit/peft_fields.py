"""The field names of peft's ``LoraConfig``, known without importing peft or torch.

``SFTRecipe.lora(**options)`` passes its extra options to ``peft.LoraConfig``; checking them against
these names makes a typo (``use_dorra=True``) fail when the recipe is built, with the closest name,
instead of after the data is prepared and the model loaded. The snapshot was read off peft 0.21's
``LoraConfig``; when ``peft`` has already been imported the live dataclass is read instead, and a test
keeps the snapshot in step with the installed peft.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys

__all__ = ["LORA_OWN_ARGUMENTS", "lora_config_fields", "unknown_lora_options"]

_SNAPSHOT: tuple[str, ...] = (
    "alora_invocation_tokens",
    "alpha_pattern",
    "arrow_config",
    "auto_mapping",
    "base_model_name_or_path",
    "bias",
    "corda_config",
    "ensure_weight_tying",
    "eva_config",
    "exclude_modules",
    "fan_in_fan_out",
    "inference_mode",
    "init_lora_weights",
    "kasa_config",
    "layer_replication",
    "layers_pattern",
    "layers_to_transform",
    "loftq_config",
    "lora_alpha",
    "lora_bias",
    "lora_dropout",
    "lora_ga_config",
    "megatron_config",
    "megatron_core",
    "modules_to_save",
    "monteclora_config",
    "peft_type",
    "peft_version",
    "qalora_group_size",
    "r",
    "rank_pattern",
    "revision",
    "runtime_config",
    "target_modules",
    "target_parameters",
    "task_type",
    "trainable_token_indices",
    "use_bdlora",
    "use_dora",
    "use_qalora",
    "use_rslora",
    "velora_config",
)

LORA_OWN_ARGUMENTS = ("r", "alpha", "dropout", "target_modules")
"""``lora()``'s own arguments (``alpha`` and ``dropout`` stand for ``lora_alpha`` and ``lora_dropout``)."""


def lora_config_fields() -> tuple[str, ...]:
    """``LoraConfig``'s init field names: the live dataclass once peft is imported, else the snapshot."""
    peft = sys.modules.get("peft")
    config = getattr(peft, "LoraConfig", None) if peft is not None else None
    if config is None or not dataclasses.is_dataclass(config):
        return _SNAPSHOT
    return tuple(sorted(field.name for field in dataclasses.fields(config) if field.init))


def unknown_lora_options(names: list[str]) -> list[str]:
    """One sentence for each of ``names`` that ``LoraConfig`` lacks, with the closest known name."""
    known = sorted(set(lora_config_fields()) | set(LORA_OWN_ARGUMENTS))
    problems = []
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        problems.append(f"lora() has no option {name!r} (peft.LoraConfig has no such field).{hint}")
    return problems
