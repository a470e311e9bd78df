"""``--set key=value`` on the command line: the value read as YAML, then set into a recipe file's data.

A key is a dotted path into the kit's layout (``lora.r``, ``training.max_steps``), a flat SFT-stage key
(``lora_r``, ``max_seq_length``), or a training field; the same rules serve ``trl-sft-kit train`` and
``trl_sft_kit.distributed``'s launch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from trl_sft_kit.cli_errors import UsageError

__all__ = ["apply_overrides"]


def _parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` into the key and the value read as YAML (text that is not YAML stays text).

    Raises:
        UsageError: no ``=`` or an empty key.
        ConfigError: the value is YAML the kit refuses (a duplicate key, an alias bomb, deep nesting).
    """
    from trl_sft_kit.yaml_safe import yaml_value

    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UsageError(f"--set takes KEY=VALUE, e.g. --set max_steps=10 or --set lora.r=8 (got {text!r}).")
    return key, yaml_value(value, source=f"--set {key}")


_STAGES = ("trl_sft", "sft")
_SHORT_SECTIONS = {
    "model": "source",
    "dataset": "source",
    "packing": "strategy",
    "loss": "mode",
    "quantization": "mode",
}
"""Sections a config may give in short form (``packing: bfd``), and the key that short form sets."""


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of a recipe config with ``--set`` overrides applied where the config keeps each setting.

    A legacy ``stage_configs: {trl_sft: {...}}`` config is first read as its flat stage (pipeline-level keys
    filled in, as ``recipe_from_dict`` does). Then a plain key replaces the setting wherever the config
    already has it (under this name or another name of the same SFTConfig field, at the top or in
    ``training``); otherwise a section or legacy key goes to the top, an SFTConfig field into the
    ``training`` section when there is one, and anything else to the top (where an unknown key is reported
    with the closest known one). A dotted key (``lora.r``, ``training.max_steps``) sets inside a section,
    expanding a short form (``packing: bfd``) first.

    >>> apply_overrides({"lora": {"r": 16}, "training": {"max_length": 256}},
    ...                 [("lora.r", 8), ("max_seq_length", 128), ("packing", "bfd")])
    {'lora': {'r': 8}, 'training': {'max_seq_length': 128}, 'packing': 'bfd'}
    """
    config = _flat_stage(copy.deepcopy(dict(data)))
    for key, value in overrides:
        for stage in _STAGES:
            key = key.removeprefix(f"stage_configs.{stage}.")
        path = key.split(".")
        if len(path) == 1:
            _set_setting(config, key, value, into_training=False)
        elif path[0] == "training" and len(path) == 2:
            _set_setting(config, path[1], value, into_training=True)
        else:
            _set_nested(config, path, value)
    return config


def _flat_stage(data: dict[str, Any]) -> dict[str, Any]:
    stages = data.get("stage_configs")
    if not isinstance(stages, Mapping):
        return data
    for name in _STAGES:
        if isinstance(stages.get(name), Mapping):
            inner = dict(stages[name])
            for key, value in data.items():
                if key not in ("stages", "stage_configs"):
                    inner.setdefault(key, value)
            return inner
    return data  # recipe_from_dict names what is wrong with it


def _synonyms(key: str) -> set[str]:
    from trl_sft_kit.sft_fields import FIELD_ALIASES

    field = FIELD_ALIASES.get(key, key)
    return {key, field, *(alias for alias, target in FIELD_ALIASES.items() if target == field)}


def _set_setting(config: dict[str, Any], key: str, value: Any, *, into_training: bool) -> None:
    from trl_sft_kit.config import LEGACY_KEYS, SECTIONS
    from trl_sft_kit.sft_fields import FIELD_ALIASES, sftconfig_fields

    names = _synonyms(key)
    section = config.get("training")
    training: dict[str, Any] | None = section if isinstance(section, dict) else None
    where: dict[str, Any]
    if not into_training and names & set(config):
        where = config
    elif training is not None and names & set(training):
        where = training
    elif into_training:
        if training is None:
            training = config["training"] = {}
        where = training
    elif key in SECTIONS or (key in LEGACY_KEYS and key not in FIELD_ALIASES):
        where = config
    elif training is not None and FIELD_ALIASES.get(key, key) in sftconfig_fields():
        where = training
    else:  # a flat config, or a key no layout knows: the config's own error names the closest key
        where = config
    for name in names & set(where):
        del where[name]
    if where is not config:  # the same field set at the top as well would clash with it
        for name in names & set(config) - set(SECTIONS):
            del config[name]
    where[key] = value


def _set_nested(config: dict[str, Any], path: list[str], value: Any) -> None:
    node = config
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            if child is None or child is True:
                child = {}
            elif depth == 0 and part in _SHORT_SECTIONS and isinstance(child, str):
                child = {_SHORT_SECTIONS[part]: child}
            else:
                dotted = ".".join(path[: depth + 1])
                raise UsageError(
                    f"--set {'.'.join(path)}: {dotted!r} is {child!r}, not a section to set keys in; set "
                    f"it whole with --set {dotted}=VALUE."
                )
            node[part] = child
        node = child
    node[path[-1]] = value
