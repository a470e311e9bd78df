"""``DataSettings``: what the data stage reads of a recipe, as one small frozen value.

The data stage (``pipeline``, ``streaming``, ``cache``) takes this value, never the recipe: its sources, the
loss, packing, tokens, the training fields (it reads ``max_length``, ``dataset_num_proc``, the seeds,
``shuffle_dataset`` and the SFTConfig data fields) and the cache setting. The recipe's ``data_settings()``
builds it; a caller may pass any object with such a method instead (``settings_of``), so the data layer
knows nothing of the recipe's shape. ``max_length_of``, ``num_proc_of`` and ``data_seed`` read the training
fields the data stage acts on, with SFTConfig's defaults where the recipe sets none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from trl_sft_kit.specs import DatasetSpec, FrozenMapping, LossSpec, PackingSpec, TokensSpec

__all__ = [
    "DEFAULT_SEED",
    "SFTCONFIG_MAX_LENGTH",
    "DataSettings",
    "SupportsDataSettings",
    "data_seed",
    "max_length_of",
    "num_proc_of",
    "settings_of",
]

SFTCONFIG_MAX_LENGTH = 1024
"""SFTConfig's default ``max_length``, used when the recipe does not set one."""

DEFAULT_SEED = 42
"""SFTConfig's default ``seed``, used to mix and hold out rows when the recipe sets neither seed."""


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


def max_length_of(settings: DataSettings | SupportsDataSettings) -> int | None:
    """The recipe's ``max_length`` (SFTConfig's default 1024 when unset; None means no limit)."""
    settings = settings_of(settings)
    value = settings.training_fields.get("max_length", SFTCONFIG_MAX_LENGTH)
    return None if value is None else int(value)


def num_proc_of(settings: DataSettings | SupportsDataSettings) -> int | None:
    """The recipe's ``dataset_num_proc``: the kit's own preparation runs over that many processes (None:
    ``$TRL_SFT_KIT_NUM_PROC`` or every core, see ``trl_sft_kit.data.parallel``)."""
    settings = settings_of(settings)
    value = settings.training_fields.get("dataset_num_proc")
    return None if value is None else int(value)


def data_seed(settings: DataSettings | SupportsDataSettings) -> int:
    """The seed that mixes sources and holds out evaluation rows: ``data_seed``, else ``seed``, else 42."""
    settings = settings_of(settings)
    fields = settings.training_fields
    value = fields.get("data_seed")
    if value is None:
        value = fields.get("seed", DEFAULT_SEED)
    return int(value)
