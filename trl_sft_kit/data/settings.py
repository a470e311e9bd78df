"""``DataSettings``: what the data stage reads of a recipe, as one small frozen value.

The data stage (``pipeline``, ``streaming``, ``cache``) takes this value, never the recipe: its sources, the
loss, packing, tokens, the training fields (it reads ``max_length``, ``dataset_num_proc``, the seeds,
``shuffle_dataset`` and the SFTConfig data fields) and the cache setting. The recipe's ``data_settings()``
builds it; a caller may pass any object with such a method instead (``settings_of``), so the data layer
knows nothing of the recipe's shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from trl_sft_kit.specs import DatasetSpec, FrozenMapping, LossSpec, PackingSpec, TokensSpec

__all__ = ["DataSettings", "SupportsDataSettings", "settings_of"]


def _specs(value: Iterable[DatasetSpec]) -> tuple[DatasetSpec, ...]:
    return tuple(value)


def _fields(value: Mapping[str, Any]) -> FrozenMapping:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value)


@attrs.frozen
class DataSettings:
    """The data part of a recipe.

    Attributes:
        dataset_specs: every source, the main one first (``.dataset()``, then each ``.mix()``).
        loss_spec: which tokens carry loss.
        packing_spec: how rows are packed, or None.
        tokens_spec: the eos / pad tokens the recipe sets.
        training_fields: the recipe's training fields, as set.
        cache_enabled: the recipe's ``cache()`` setting (None: by source size).
    """

    dataset_specs: tuple[DatasetSpec, ...] = attrs.field(converter=_specs)
    loss_spec: LossSpec = attrs.field(factory=LossSpec)
    packing_spec: PackingSpec | None = None
    tokens_spec: TokensSpec = attrs.field(factory=TokensSpec)
    training_fields: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_fields)
    cache_enabled: bool | None = None


@runtime_checkable
class SupportsDataSettings(Protocol):
    """Anything that can say its data settings (a recipe does)."""

    def data_settings(self) -> DataSettings: ...


def settings_of(value: DataSettings | SupportsDataSettings) -> DataSettings:
    """``value`` itself when it is a ``DataSettings``, else its ``data_settings()``."""
    if isinstance(value, DataSettings):
        return value
    if isinstance(value, SupportsDataSettings):
        return value.data_settings()
    raise TypeError(f"the data stage takes DataSettings or a recipe, not {type(value).__name__}")
