"""``ModelSpec``: the base model (hub id, local folder or loaded object), its ``from_pretrained`` options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.specs.values import (
    FrozenMapping,
    _freeze_mapping,
    _one_of,
    _optional_str,
    _short,
    of_type,
)


def _is_loaded_object(value: Any) -> bool:
    return value is not None and not isinstance(value, (str, os.PathLike))


def _model_source(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


_MODEL_OWN = {
    "dtype": ".model(..., dtype=...)",
    "torch_dtype": ".model(..., dtype=...)",
    "attn_implementation": ".model(..., attn_implementation=...)",
    "trust_remote_code": ".model(..., trust_remote_code=...)",
    "revision": ".model(..., revision=...)",
    "quantization_config": ".quantize()",
    "use_kernels": ".liger()",
}


def _model_init_kwargs(value: Mapping[str, Any] | None) -> FrozenMapping:
    kwargs = _freeze_mapping(value)
    owned = [f"{key!r} (set by {_MODEL_OWN[key]})" for key in kwargs if key in _MODEL_OWN]
    if owned:
        raise RecipeError(f"model keyword argument(s) {', '.join(owned)}: use those instead.")
    return kwargs


@attrs.frozen(repr=False)
class ModelSpec:
    """The base model: a local path or hub id, or an already-loaded ``PreTrainedModel`` with its tokenizer.

    A loaded model is compared and hashed by identity, and is trained in place.
    """

    source: Any = attrs.field(converter=_model_source)
    tokenizer: Any = attrs.field(default=None, converter=_model_source)
    dtype: str = attrs.field(default="auto", validator=_one_of("auto", "float32", "bfloat16", "float16"))
    attn_implementation: str | None = attrs.field(default=None, validator=_optional_str)
    trust_remote_code: bool = attrs.field(default=False, validator=of_type(bool))
    revision: str | None = attrs.field(default=None, validator=_optional_str)
    init_kwargs: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_model_init_kwargs)
    """Further ``from_pretrained`` keyword arguments (``device_map``, ``low_cpu_mem_usage``, ...)."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.source, str) and not self.source.strip():
            raise RecipeError(
                "the model name or path is empty; pass a local folder, a hub id, or a loaded model."
            )
        if not isinstance(self.source, str) and not _is_loaded_object(self.source):
            raise RecipeError(f"model must be a path, a hub id or a loaded model (got {self.source!r}).")

    @property
    def is_loaded(self) -> bool:
        """Whether the model is an object in memory rather than a name to load."""
        return not isinstance(self.source, str)

    @property
    def name(self) -> str:
        """A readable name: the path or id, or the loaded model's ``name_or_path``."""
        if isinstance(self.source, str):
            return self.source
        config = getattr(self.source, "config", None)
        return str(getattr(config, "_name_or_path", "") or type(self.source).__name__)

    def __repr__(self) -> str:
        parts = [repr(self.name) if not self.is_loaded else f"<loaded {type(self.source).__name__}>"]
        if self.tokenizer is not None:
            shown = _short(self.tokenizer) if isinstance(self.tokenizer, str) else "<loaded>"
            parts.append(f"tokenizer={shown}")
        for name in ("dtype", "attn_implementation", "trust_remote_code", "revision"):
            value = getattr(self, name)
            default = attrs.fields_dict(ModelSpec)[name].default
            if value != default:
                parts.append(f"{name}={value!r}")
        parts += [f"{key}={value!r}" for key, value in self.init_kwargs.items()]
        return f"ModelSpec({', '.join(parts)})"
