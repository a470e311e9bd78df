"""Frozen option specs that an ``SFTRecipe`` is made of.

Each spec is a small ``attrs`` frozen class. Field validators check one value (layer 1); a spec's
``__attrs_post_init__`` checks its own fields together (layer 2); ``SFTRecipe.validate`` checks the whole
recipe (layer 3). Converters are idempotent because ``attrs.evolve`` runs them again on every copy.
Nothing here imports torch, transformers, TRL or datasets.
"""

from __future__ import annotations

from trl_sft_kit.specs.data import DatasetSpec, InlineRows
from trl_sft_kit.specs.model import ModelSpec
from trl_sft_kit.specs.training import (
    DISTRIBUTED_KINDS,
    LOSS_MODES,
    LOSS_ROLES,
    DistributedSpec,
    LoraSpec,
    LossSpec,
    NeftuneSpec,
    PackingSpec,
    QuantizationSpec,
    TokensSpec,
)
from trl_sft_kit.specs.values import FrozenMapping, freeze, json_key, of_type, spec_to_dict, thaw

__all__ = [
    "DISTRIBUTED_KINDS",
    "LOSS_MODES",
    "LOSS_ROLES",
    "DatasetSpec",
    "DistributedSpec",
    "FrozenMapping",
    "InlineRows",
    "LoraSpec",
    "LossSpec",
    "ModelSpec",
    "NeftuneSpec",
    "PackingSpec",
    "QuantizationSpec",
    "TokensSpec",
    "freeze",
    "json_key",
    "of_type",
    "spec_to_dict",
    "thaw",
]
