"""Recipes to and from plain data and YAML, including the flat keys of the older SFT pipeline stage.

The kit's own layout has one section per option::

    model: {source: Qwen/Qwen2.5-0.5B-Instruct}
    dataset: {source: chats.jsonl}
    lora: {r: 16}
    packing: ffd
    training: {num_train_epochs: 3}

A flat stage config (``dataset_name_or_path``, ``max_seq_length``, ``lora_r``, ``use_4bit``, ...), alone or
nested as ``stage_configs: {trl_sft: {...}}``, is read too, so existing pipeline configs migrate unchanged.
Any ``SFTConfig`` field may also stand at the top level of a flat config.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.errors import ConfigError, RecipeError
from trl_sft_kit.sft_fields import FIELD_ALIASES, sftconfig_fields
from trl_sft_kit.specs import InlineRows, spec_to_dict, thaw

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["LEGACY_KEYS", "dump_yaml", "load_yaml", "recipe_from_dict", "recipe_to_dict"]

SECTIONS = (
    "model", "dataset", "lora", "quantization", "packing", "neftune", "liger", "loss", "chat_template", "tokens",
    "training",
)

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


# ------------------------------------------------------------------------------------------ to dict


def recipe_to_dict(recipe: SFTRecipe) -> dict[str, Any]:
    """Plain data for ``recipe``, in the kit's own layout; only options that are set are written."""
    data: dict[str, Any] = {}
    model = recipe.model_spec
    if model is not None:
        if model.is_loaded or (model.tokenizer is not None and not isinstance(model.tokenizer, str)):
            raise ConfigError(
                "a recipe holding a loaded model or tokenizer cannot be written to a file; save the model with "
                "save_pretrained() and pass its folder to .model().",
                key="model",
            )
        data["model"] = _non_default(spec_to_dict(model), {"tokenizer": None, "dtype": "auto",
                                     "attn_implementation": None, "trust_remote_code": False, "revision": None})
    dataset = recipe.dataset_spec
    if dataset is not None:
        if not dataset.is_serialisable:
            raise ConfigError(
                "a recipe holding a datasets.Dataset cannot be written to a file; save it with "
                "dataset.to_json('data.jsonl') and pass that path to .dataset().",
                key="dataset",
            )
        section = _non_default(spec_to_dict(dataset), {"format": "auto", "split": "train", "text_field": "text",
                                                     "columns": None, "on_bad_rows": "error"})
        if isinstance(dataset.source, InlineRows):
            section.pop("source")
            section["rows"] = dataset.source.to_list()
        data["dataset"] = section
    if recipe.lora_spec is not None:
        data["lora"] = spec_to_dict(recipe.lora_spec)
    if recipe.quantization_spec is not None:
        quant = spec_to_dict(recipe.quantization_spec)
        quant["mode"] = recipe.quantization_spec.mode
        del quant["bits"]
        data["quantization"] = quant
    if recipe.packing_spec is not None:
        data["packing"] = recipe.packing_spec.strategy
    if recipe.neftune_spec is not None:
        data["neftune"] = recipe.neftune_spec.alpha
    if recipe.liger_enabled:
        data["liger"] = True
    if recipe.loss_spec.mode != "auto":
        data["loss"] = recipe.loss_spec.mode
    if recipe.tokens_spec.chat_template is not None:
        data["chat_template"] = recipe.tokens_spec.chat_template
    tokens = {k: v for k, v in (("eos", recipe.tokens_spec.eos), ("pad", recipe.tokens_spec.pad)) if v is not None}
    if tokens:
        data["tokens"] = tokens
    if recipe.training_fields:
        data["training"] = thaw(dict(recipe.training_fields))
    return data


def _non_default(section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in section.items() if key not in defaults or value != defaults[key]}


# ------------------------------------------------------------------------------------------ from dict


def recipe_from_dict(data: Mapping[str, Any]) -> SFTRecipe:
    """Build a recipe from the kit's layout, a flat stage config, or ``stage_configs: {trl_sft: ...}``.

    Raises:
        ConfigError: unknown keys (each with the closest known key) or values of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a recipe config must be a mapping of keys to values (got {type(data).__name__}).")
    data = _unwrap_stage(data)
    try:
        return _build(data)
    except ConfigError:
        raise
    except RecipeError as exc:
        raise ConfigError(f"the config describes a recipe that cannot be built: {exc}") from exc


def _unwrap_stage(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "stage_configs" not in data:
        return data
    stages = data["stage_configs"]
    if not isinstance(stages, Mapping):
        raise ConfigError("'stage_configs' must map stage names to their settings.", key="stage_configs")
    for name in _STAGE_NAMES:
        if name in stages:
            extra = [key for key in data if key not in ("stages", "stage_configs")]
            inner = dict(stages[name] or {})
            for key in extra:  # pipeline-level settings (output_dir, model_name_or_path) apply to the stage
                inner.setdefault(key, data[key])
            return inner
    raise ConfigError(
        f"'stage_configs' has no 'trl_sft' stage (it has {', '.join(map(repr, stages)) or 'none'}).",
        key="stage_configs",
    )


def _closest(key: str) -> str:
    known = sorted(set(SECTIONS) | set(LEGACY_KEYS) | set(sftconfig_fields()) | set(FIELD_ALIASES))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _expect(value: Any, kinds: type | tuple[type, ...], key: str) -> Any:
    if isinstance(value, bool) and kinds in (int, float, (int, float)):
        raise ConfigError(f"{key!r} must be a number (got {value!r}).", key=key)
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise ConfigError(f"{key!r} must be a {names} (got {type(value).__name__} {value!r}).", key=key)
    return value


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data[key]
    if isinstance(value, str) and key in ("model", "dataset"):
        return {"source": value}
    return dict(_expect(value, Mapping, key))


def _call(method: Any, key: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return method(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key!r}: {exc}", key=key) from None


def _build(data: Mapping[str, Any]) -> SFTRecipe:
    from trl_sft_kit.recipe import SFTRecipe

    unknown = [key for key in data if not isinstance(key, str)]
    if unknown:
        raise ConfigError(f"config keys must be strings (got {unknown[0]!r}).")
    known_fields = sftconfig_fields()
    unknown_keys = [
        key
        for key in data
        if key not in SECTIONS and key not in LEGACY_KEYS and key not in known_fields and key not in FIELD_ALIASES
        and key != "stages"
    ]
    if unknown_keys:
        message = " ".join(f"unknown key {key!r}.{_closest(key)}" for key in unknown_keys)
        raise ConfigError(message, key=unknown_keys[0])

    recipe = SFTRecipe()
    training: dict[str, Any] = {}
    if "training" in data:
        training.update(_section(data, "training"))
    # flat SFTConfig fields and aliases at the top level
    for key, value in data.items():
        if key in SECTIONS or key in LEGACY_KEYS or key == "stages":
            continue
        training[key] = value
    if "max_seq_length" in data:
        training["max_length"] = data["max_seq_length"]

    # model
    model: dict[str, Any] = _section(data, "model") if "model" in data else {}
    if "model_name_or_path" in data:
        model.setdefault("source", _expect(data["model_name_or_path"], str, "model_name_or_path"))
    if model:
        source = model.pop("source", None) or model.pop("name_or_path", None)
        if source is None:
            raise ConfigError("the 'model' section needs a 'source' (a folder or hub id).", key="model")
        recipe = _call(recipe.model, "model", source, **model)

    # dataset
    dataset: dict[str, Any] = _section(data, "dataset") if "dataset" in data else {}
    if "dataset_name_or_path" in data:
        dataset.setdefault("source", _expect(data["dataset_name_or_path"], str, "dataset_name_or_path"))
    if "dataset_text_field" in data:
        dataset.setdefault("text_field", _expect(data["dataset_text_field"], str, "dataset_text_field"))
    if dataset:
        source = dataset.pop("source", None)
        rows = dataset.pop("rows", None)
        if (source is None) == (rows is None):
            raise ConfigError("the 'dataset' section needs exactly one of 'source' or 'rows'.", key="dataset")
        recipe = _call(recipe.dataset, "dataset", source if source is not None else rows, **dataset)

    recipe = _lora_from(data, recipe)
    recipe = _quantization_from(data, recipe)
    recipe = _packing_from(data, recipe)
    recipe = _loss_from(data, recipe)

    neftune = data.get("neftune", data.get("neftune_noise_alpha"))
    if neftune is not None:
        key = "neftune" if "neftune" in data else "neftune_noise_alpha"
        recipe = recipe.neftune(_expect(neftune, (int, float), key))
    liger = data.get("liger", data.get("use_liger_kernel", False))
    recipe = recipe.liger(_expect(liger, bool, "liger" if "liger" in data else "use_liger_kernel"))
    template = data.get("chat_template", data.get("chat_template_path"))
    if template is not None:
        recipe = recipe.chat_template(_expect(template, str, "chat_template"))
    tokens = dict(_expect(data.get("tokens", {}), Mapping, "tokens"))
    eos, pad = tokens.pop("eos", data.get("eos_token")), tokens.pop("pad", data.get("pad_token"))
    if tokens:
        raise ConfigError(f"'tokens' takes 'eos' and 'pad' (got {', '.join(map(repr, tokens))}).", key="tokens")
    if eos is not None or pad is not None:
        recipe = recipe.tokens(eos=eos, pad=pad)
    if training:
        recipe = recipe.training(**training)
    return recipe


def _lora_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    lora: dict[str, Any] | None = None
    if "lora" in data and data["lora"] is not None and data["lora"] is not False:
        lora = {} if data["lora"] is True else _section(data, "lora")
        options = lora.pop("options", None) or {}
        lora.update(_expect(options, Mapping, "lora.options"))
    flat = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "lora_target_modules": "target_modules"}
    given = {new: data[old] for old, new in flat.items() if old in data and data[old] is not None}
    use_lora = data.get("use_lora")
    if given or use_lora:
        lora = {**(lora or {}), **given}
    if use_lora is False:
        lora = None
    if lora is None:
        return recipe
    return _call(recipe.lora, "lora", **lora)  # type: ignore[no-any-return]


def _quantization_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    quant: dict[str, Any] | None = None
    if "quantization" in data and data["quantization"] is not None:
        value = data["quantization"]
        quant = {"mode": value} if isinstance(value, (str, int)) else _section(data, "quantization")
    use_4bit = _expect(data.get("use_4bit", False), bool, "use_4bit")
    use_8bit = _expect(data.get("use_8bit", False), bool, "use_8bit")
    if use_4bit and use_8bit:
        raise ConfigError("use_4bit and use_8bit are both true; choose one.", key="use_4bit")
    if use_4bit or use_8bit:
        quant = {**(quant or {}), "mode": "4bit" if use_4bit else "8bit"}
        for old, new in (("bnb_4bit_quant_type", "quant_type"), ("bnb_4bit_compute_dtype", "compute_dtype"),
                         ("bnb_4bit_use_double_quant", "double_quant"), ("use_nested_quant", "double_quant")):
            if data.get(old) is not None:
                quant[new] = data[old]
    if quant is None:
        return recipe
    mode = quant.pop("mode", None) or quant.pop("bits", None)
    if mode is None:
        raise ConfigError("the 'quantization' section needs 'mode': '4bit' or '8bit'.", key="quantization")
    return _call(recipe.quantize, "quantization", mode, **quant)  # type: ignore[no-any-return]


def _packing_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    value = data.get("packing")
    if value is None or value is False:
        return recipe
    if value is True:
        strategy = data.get("packing_strategy") or "ffd"
    else:
        strategy = value
    return recipe.packing(_expect(strategy, str, "packing_strategy"))


def _loss_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    if "loss" in data:
        return recipe.loss(_expect(data["loss"], str, "loss"))
    completion = data.get("completion_only_loss")
    assistant = _expect(data.get("assistant_only_loss", False) or False, bool, "assistant_only_loss")
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
    return recipe


# ------------------------------------------------------------------------------------------ YAML


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text for plain data, keys in the order given."""
    import yaml

    return str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))


def load_yaml(path_or_text: str | os.PathLike[str]) -> dict[str, Any]:
    """Read YAML from a file path or from text.

    Raises:
        ConfigError: the file is missing, the YAML is malformed (with its line), or it is not a mapping.
    """
    import yaml

    text: str
    name = "YAML text"
    if isinstance(path_or_text, os.PathLike) or ("\n" not in str(path_or_text) and ":" not in str(path_or_text)):
        path = Path(path_or_text)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist.", path=str(path))
        text, name = path.read_text(encoding="utf-8"), str(path)
    else:
        text = str(path_or_text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{name} is not valid YAML{where}: {exc}", path=name) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must hold a mapping of settings (got {type(data).__name__}).", path=name)
    return data
