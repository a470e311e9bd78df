"""TRL's own ``trl sft`` config keys (``ModelConfig``, ``ScriptArguments``), read as the kit's.

A YAML written for ``trl sft --config`` keeps working: ``model_name_or_path``, ``dataset_name``,
``use_peft``, ``load_in_4bit`` / ``load_in_8bit``, ``lora_r``, ``lora_alpha``, ``lora_target_modules`` and the
rest are rewritten into the kit's keys before the config is read (``trl_sft_kit.config``), and the SFTConfig
fields beside them are read as before. Inside a ``lora`` section peft's names (``lora_alpha``,
``lora_dropout``) stand beside the short ones. A TRL key given together with the kit key it stands for is
an error naming both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl_sft_kit.errors import ConfigError

__all__ = ["TRL_KEYS", "translate_trl_keys"]

# TRL key -> (the kit's place: a flat key, or "section.key"); flat keys are the kit's LEGACY_KEYS
TRL_KEYS: dict[str, str] = {
    "dataset_name": "dataset_name_or_path",
    "use_peft": "use_lora",
    "load_in_4bit": "use_4bit",
    "load_in_8bit": "use_8bit",
    "use_bnb_nested_quant": "use_nested_quant",
    "model_revision": "model.revision",
    "dtype": "model.dtype",
    "torch_dtype": "model.dtype",
    "attn_implementation": "model.attn_implementation",
    "trust_remote_code": "model.trust_remote_code",
    "model_init_kwargs": "model.model_init_kwargs",
    "dataset_config": "dataset.config",
    "dataset_train_split": "dataset.split",
    "dataset_streaming": "dataset.streaming",
    "use_rslora": "lora.use_rslora",
    "use_dora": "lora.use_dora",
    "lora_modules_to_save": "lora.modules_to_save",
    "lora_target_parameters": "lora.target_parameters",
}
"""TRL ``trl sft`` keys the kit reads, and where each goes. ``model_name_or_path``, ``lora_r``,
``lora_alpha``, ``lora_dropout``, ``lora_target_modules`` and ``bnb_4bit_quant_type`` are the kit's own flat
keys already."""

_PEFT_NAMES = {"lora_alpha": "alpha", "lora_dropout": "dropout"}
_LORA_TASK = "lora_task_type"


def translate_trl_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a config with TRL's keys rewritten into the kit's (see ``TRL_KEYS``).

    Raises:
        ConfigError: a TRL key and the kit key it stands for are both set, a section key would land in a
            section that is not a mapping, or ``lora_task_type`` is not ``CAUSAL_LM``.

    >>> translate_trl_keys({"dataset_name": "trl-lib/Capybara", "use_peft": True, "load_in_4bit": True})
    {'dataset_name_or_path': 'trl-lib/Capybara', 'use_lora': True, 'use_4bit': True}
    >>> translate_trl_keys({"model_name_or_path": "gpt2", "model_revision": "main"})
    {'model_name_or_path': 'gpt2', 'model': {'revision': 'main'}}
    """
    out: dict[str, Any] = {key: value for key, value in data.items() if key not in TRL_KEYS}
    task = out.pop(_LORA_TASK, None)
    if task is not None and str(task).upper() != "CAUSAL_LM":
        raise ConfigError(
            f"{_LORA_TASK!r} is {task!r}, but the kit trains causal language models; use CAUSAL_LM or "
            "leave it out.",
            key=_LORA_TASK,
        )
    if isinstance(out.get("lora"), Mapping):
        out["lora"] = _peft_names(out["lora"])
    for key, value in data.items():
        if key not in TRL_KEYS or value is None:
            continue
        place = TRL_KEYS[key]
        section, _, name = place.rpartition(".")
        if not section:
            _put(out, place, value, key, where=place)
            continue
        target = out.get(section)
        if target is None or target is True:  # `lora: true` is an empty lora section
            target = {}
        elif isinstance(target, str) and section in ("model", "dataset"):
            target = {"source": target}
        elif not isinstance(target, Mapping):
            raise ConfigError(f"{key!r} goes into the {section!r} section, which is not a mapping.", key=key)
        target = dict(target)
        _put(target, name, value, key, where=place)
        out[section] = target
    return out


def _put(target: dict[str, Any], name: str, value: Any, key: str, *, where: str) -> None:
    if target.get(name) is not None:
        raise ConfigError(f"{key!r} (TRL's name) and {where!r} both set {where!r}; keep one.", key=key)
    target[name] = value


def _peft_names(section: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(section)
    for peft_name, short in _PEFT_NAMES.items():
        if peft_name in out:
            if out.get(short) is not None:
                raise ConfigError(
                    f"'lora.{peft_name}' and 'lora.{short}' both set the LoRA {short}; keep one.",
                    key=f"lora.{peft_name}",
                )
            out[short] = out.pop(peft_name)
    return out
