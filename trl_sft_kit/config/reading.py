"""Plain data into a recipe (``recipe_from_dict``): the kit's layout, a flat stage config or both mixed.

Each section is read on its own and every section's error is collected into one ``ConfigError``; an unknown
key gets the closest known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trl_sft_kit.config.legacy import LEGACY_KEYS, _lora_from, _loss_from, _quantization_from, _unwrap_stage
from trl_sft_kit.config.values import _call, _expect, _first, _flag, _number, _section
from trl_sft_kit.config.writing import _MODEL_DEFAULTS
from trl_sft_kit.errors import ConfigError, RecipeError, numbered
from trl_sft_kit.sft_fields import FIELD_ALIASES, resolve_training_fields, sftconfig_fields

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe

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


def _closest(key: str) -> str:
    known = sorted(set(SECTIONS) | set(LEGACY_KEYS) | set(sftconfig_fields()) | set(FIELD_ALIASES))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


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
