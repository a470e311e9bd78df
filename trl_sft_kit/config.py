"""Recipes to and from plain data and YAML, including the flat keys of the older SFT pipeline stage.

The kit's own layout has one section per option:

```yaml
model: {source: Qwen/Qwen2.5-0.5B-Instruct}
dataset: {source: chats.jsonl}
lora: {r: 16}
packing: ffd
training: {num_train_epochs: 3}
```

A mixture lists its sources, the first being ``.dataset()``'s and the others ``.mix()``'s:

```yaml
dataset:
  - {source: chats.jsonl, eval: 0.05}
  - {source: instructions.jsonl, weight: 0.3}
distributed: {kind: fsdp, num_processes: 8, cpu_offload: true}
cache: false
```

A flat stage config (``dataset_name_or_path``, ``max_seq_length``, ``lora_r``, ``use_4bit``, ...), alone or
nested as ``stage_configs: {trl_sft: {...}}``, is read too, so existing pipeline configs migrate unchanged.
Any ``SFTConfig`` field may also stand at the top level of a flat config.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.errors import ConfigError, RecipeError, numbered
from trl_sft_kit.sft_fields import FIELD_ALIASES, resolve_training_fields, sftconfig_fields
from trl_sft_kit.specs import DatasetSpec, InlineRows, spec_to_dict, thaw

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["LEGACY_KEYS", "dump_yaml", "load_yaml", "recipe_from_dict", "recipe_to_dict"]

SECTIONS = (
    "model",
    "dataset",
    "lora",
    "quantization",
    "packing",
    "neftune",
    "liger",
    "loss",
    "chat_template",
    "tokens",
    "training",
    "distributed",
    "cache",
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
            inner = dict(_expect(stages[name] or {}, Mapping, f"stage_configs.{name}"))
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


def _number(value: Any, key: str, *, whole: bool = False) -> Any:
    """A number from a config; text such as ``1e-1`` (which YAML 1.1 reads as a string) is read as one."""
    wanted = "a whole number" if whole else "a number"
    given = value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{key!r} must be {wanted} (got {given!r}).", key=key) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key!r} must be {wanted} (got {given!r}).", key=key)
    if whole and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key!r} must be {wanted} (got {given!r}).", key=key)
        value = int(value)
    return value


def _flag(data: Mapping[str, Any], key: str) -> bool:
    """A true/false key that may be missing or null (both mean false)."""
    value = data.get(key)
    return False if value is None else bool(_expect(value, bool, key))


def _first(data: Mapping[str, Any], *keys: str) -> tuple[str, Any]:
    """The first of ``keys`` set to something other than null, and its value; ``(keys[0], None)`` if none."""
    for key in keys:
        if data.get(key) is not None:
            return key, data[key]
    return keys[0], None


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if isinstance(value, str) and key in ("model", "dataset"):
        return {"source": value}
    return dict(_expect(value, Mapping, key))


def _call(method: Any, key: str, *args: Any, keys: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
    """Call a recipe method with config values; its errors become ``ConfigError`` naming the config key.

    ``keys`` maps a spec field (``dropout``) to the config key that set it (``lora_dropout``), so that an
    error about that field names the key the user wrote.
    """
    try:
        return method(*args, **kwargs)
    except ConfigError:
        raise
    except (TypeError, RecipeError) as exc:
        text = str(exc)
        named = next(
            (
                k
                for field, k in (keys or {}).items()
                if text.startswith(repr(field)) or f"option {field!r}" in text
            ),
            key,
        )
        raise ConfigError(f"{named!r}: {exc}", key=named) from None


def _build(data: Mapping[str, Any]) -> SFTRecipe:
    """Build the recipe section by section, collecting every section's error into one ``ConfigError``."""
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.trl_keys import translate_trl_keys

    data = translate_trl_keys(data)  # TRL's `trl sft` keys (dataset_name, use_peft, ...) as the kit's

    unknown = [key for key in data if not isinstance(key, str)]
    if unknown:
        raise ConfigError(f"config keys must be strings (got {unknown[0]!r}).")
    known_fields = sftconfig_fields()
    unknown_keys = [
        key
        for key in data
        if key not in SECTIONS
        and key not in LEGACY_KEYS
        and key not in known_fields
        and key not in FIELD_ALIASES
        and key != "stages"
    ]
    errors = [ConfigError(f"unknown key {key!r}.{_closest(key)}", key=key) for key in unknown_keys]
    recipe = SFTRecipe()
    training: dict[str, Any] = {}
    try:
        training = _training_from(data)
    except ConfigError as exc:
        errors.append(exc)
    steps = (
        _model_from,
        _datasets_from,
        _lora_from,
        _quantization_from,
        _packing_from,
        _loss_from,
        _extras_from,
        lambda data, recipe: _call(recipe.training, "training", **training) if training else recipe,
        _distributed_from,
        _cache_from,
    )
    for step in steps:
        try:
            recipe = step(data, recipe)
        except ConfigError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        problems = tuple(problem for error in errors for problem in error.problems)
        raise ConfigError(numbered("the config has problems", problems), key=errors[0].key, problems=problems)
    return recipe


def _model_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    model = _section(data, "model")
    key, value = _first(data, "model_name_or_path")
    if value is not None:
        model.setdefault("source", _expect(value, str, key))
    if model:
        source = model.pop("source", None) or model.pop("name_or_path", None)
        if source is None:
            raise ConfigError("the 'model' section needs a 'source' (a folder or hub id).", key="model")
        allowed = sorted((set(_MODEL_DEFAULTS) - {"init_kwargs"}) | {"model_init_kwargs"})
        extra = [key for key in model if key not in allowed]
        if extra:  # from_pretrained's own keyword arguments go under model_init_kwargs, so typos are caught
            close = difflib.get_close_matches(extra[0], allowed, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"the 'model' section has no key {extra[0]!r}.{hint} Further from_pretrained keyword "
                "arguments go under 'model_init_kwargs'.",
                key=f"model.{extra[0]}",
            )
        init = model.pop("model_init_kwargs", None) or {}
        init_kwargs = dict(_expect(init, Mapping, "model.model_init_kwargs"))
        recipe = _call(recipe.model, "model", source, **model, **init_kwargs)
    return recipe


def _datasets_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    """One source, or a list of them (a mixture)."""
    listed = data.get("dataset")
    if isinstance(listed, list):
        if not listed:
            raise ConfigError("the 'dataset' list is empty; give at least one source.", key="dataset")
        for index, item in enumerate(listed):
            key = f"dataset[{index}]"
            section = {"source": item} if isinstance(item, str) else dict(_expect(item, Mapping, key))
            method = recipe.dataset if index == 0 else recipe.mix
            recipe = _dataset_from(method, section, key)
        return recipe
    dataset = _section(data, "dataset")
    for old, new in (("dataset_name_or_path", "source"), ("dataset_text_field", "text_field")):
        key, value = _first(data, old)
        if value is not None:
            dataset.setdefault(new, _expect(value, str, key))
    if dataset:
        recipe = _dataset_from(recipe.dataset, dataset, "dataset")
    return recipe


def _extras_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    """NEFTune, Liger, the chat template and the eos / pad tokens."""
    key, neftune = _first(data, "neftune", "neftune_noise_alpha")
    if neftune is not None:
        recipe = _call(recipe.neftune, key, _number(neftune, key))
    key = "liger" if data.get("liger") is not None else "use_liger_kernel"
    recipe = _call(recipe.liger, key, _flag(data, key))
    key, template = _first(data, "chat_template", "chat_template_path")
    if template is not None:
        recipe = _call(recipe.chat_template, key, _expect(template, str, key))
    tokens = _section(data, "tokens")
    eos, pad = tokens.pop("eos", data.get("eos_token")), tokens.pop("pad", data.get("pad_token"))
    if tokens:
        listed = ", ".join(map(repr, tokens))
        raise ConfigError(f"'tokens' takes 'eos' and 'pad' (got {listed}).", key="tokens")
    if eos is not None or pad is not None:
        where = {"eos": "tokens.eos" if "tokens" in data else "eos_token"}
        where["pad"] = "tokens.pad" if "tokens" in data else "pad_token"
        recipe = _call(recipe.tokens, "tokens", eos=eos, pad=pad, keys=where)
    return recipe


def _cache_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    if data.get("cache") is not None:
        recipe = _call(recipe.cache, "cache", _expect(data["cache"], bool, "cache"))
    return recipe


def _dataset_from(method: Any, section: dict[str, Any], key: str) -> SFTRecipe:
    """Call ``dataset`` or ``mix`` with one source's section (``source`` or ``rows``, maybe ``eval_rows``)."""
    source = section.pop("source", None)
    rows = section.pop("rows", None)
    if (source is None) == (rows is None):
        raise ConfigError(f"the {key!r} section needs exactly one of 'source' or 'rows'.", key=key)
    if "eval_rows" in section:
        if section.get("eval") is not None:
            raise ConfigError(f"the {key!r} section gives both 'eval' and 'eval_rows'; keep one.", key=key)
        section["eval"] = _expect(section.pop("eval_rows"), list, f"{key}.eval_rows")
    keys = {name: f"{key}.{name}" for name in section}
    recipe: SFTRecipe = _call(method, key, source if source is not None else rows, keys=keys, **section)
    return recipe


def _distributed_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    value = data.get("distributed")
    if value is None or value is False:
        return recipe
    if isinstance(value, str):
        return _call(recipe.distributed, "distributed", value)
    options = dict(_expect(value, Mapping, "distributed"))
    kind = options.pop("kind", "ddp")
    keys = {name: f"distributed.{name}" for name in options}
    return _call(
        recipe.distributed, "distributed", _expect(kind, str, "distributed.kind"), keys=keys, **options
    )


def _training_from(data: Mapping[str, Any]) -> dict[str, Any]:
    """The SFTConfig fields of a config: its ``training`` section, and flat fields and aliases.

    Each is checked on its own, so that an error names the key that caused it.

    Raises:
        ConfigError: an unknown or refused field, a value of the wrong type, or one field set twice.
    """
    entries = [(f"training.{name}", name, value) for name, value in _section(data, "training").items()]
    entries += [
        (key, key, value)
        for key, value in data.items()
        if key not in SECTIONS and key != "stages" and (key not in LEGACY_KEYS or key in FIELD_ALIASES)
    ]
    fields: dict[str, Any] = {}
    where: dict[str, str] = {}
    errors: list[ConfigError] = []
    for key, name, value in entries:
        try:
            ((field, coerced),) = resolve_training_fields({str(name): value}).items()
        except RecipeError as exc:
            errors.append(ConfigError(str(exc), key=key))
            continue
        if field in fields:
            errors.append(
                ConfigError(
                    f"{where[field]!r} and {key!r} both set the SFTConfig field {field!r}; keep one.", key=key
                )
            )
            continue
        fields[field], where[field] = coerced, key
    if len(errors) == 1:
        raise errors[0]
    if errors:
        problems = tuple(str(error) for error in errors)
        raise ConfigError(
            numbered("the training fields have problems", problems), key=errors[0].key, problems=problems
        )
    return fields


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


def _packing_from(data: Mapping[str, Any], recipe: SFTRecipe) -> SFTRecipe:
    value = data.get("packing")
    if value is None or value is False:
        return recipe
    if isinstance(value, Mapping):
        options = dict(value)
        strategy = options.pop("strategy", "ffd")
        keys = {name: f"packing.{name}" for name in options}
        return _call(
            recipe.packing, "packing", _expect(strategy, str, "packing.strategy"), keys=keys, **options
        )
    key, strategy = "packing", value
    if value is True:
        key, strategy = _first(data, "packing_strategy")
        strategy = "ffd" if strategy is None else strategy
    return _call(recipe.packing, key, _expect(strategy, str, key))


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


# ------------------------------------------------------------------------------------------ YAML


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text for plain data, keys in the order given; ``load_yaml`` reads back exactly ``data``.

    Non-ASCII text is written as it is, except when a string holds U+0085 (NEL): PyYAML writes that raw
    and reads it back as a line break, so then every non-ASCII character is escaped instead.

    Raises:
        ConfigError: a value YAML cannot hold (an object rather than strings, numbers, lists and dicts).
    """
    import yaml

    try:
        text = str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))
        if "\x85" in text:
            text = str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=False))
        return text
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"the recipe holds a value YAML cannot write ({exc}); give plain strings, numbers, lists and "
            "dicts."
        ) from None


def names_file(text: str) -> bool:
    """Whether ``from_yaml``'s argument names a file: one line that is a file or holds no ``key: value``."""
    if "\n" in text or not text.strip():
        return False
    try:
        if Path(text).is_file():
            return True
    except (OSError, ValueError):
        return False
    return re.search(r":(\s|$)", text) is None


def load_yaml(path_or_text: str | os.PathLike[str]) -> dict[str, Any]:
    """Read YAML from a file path or from text.

    A ``PathLike``, or a one-line string that is an existing file or holds no ``key: value``, is a path
    (so ``C:\\configs\\sft.yaml`` is one); anything else is YAML text.

    The YAML is read as ``yaml.safe_load`` reads it, except that a key given twice in one mapping, aliases
    that expand past 10,000 values and nesting deeper than 100 levels are refused (``trl_sft_kit.yaml_safe``).

    Raises:
        ConfigError: the file is missing, the YAML is malformed (with its line), it is not a mapping, or it
            holds a duplicate key, an alias bomb or too deep nesting (each with its line).
    """
    import yaml

    from trl_sft_kit.yaml_safe import load_yaml_text

    text: str
    name, path = "YAML text", None
    if isinstance(path_or_text, os.PathLike) or names_file(str(path_or_text)):
        file = Path(path_or_text)
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist.", path=str(file))
        name = path = str(file)
        try:
            text = file.read_text(encoding="utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = file.read_bytes()[: exc.start].count(b"\n") + 1
            raise ConfigError(
                f"{name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
                "save it as UTF-8.",
                path=name,
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror or exc}.", path=name) from None
    else:
        text = str(path_or_text)
    try:
        data = load_yaml_text(text, source=name, path=path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{name} is not valid YAML{where}: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must hold a mapping of settings (got {type(data).__name__}).", path=path)
    return data
