"""trl_sft_kit: supervised fine-tuning on top of Hugging Face TRL, described as an immutable recipe.

>>> from trl_sft_kit import SFTRecipe
>>> recipe = SFTRecipe().dataset("chats.jsonl").lora(r=8).packing("bfd")
>>> recipe.packing_spec.strategy
'bfd'
"""

from typing import Any

from trl_sft_kit.compile import Compiled
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.errors import (
    BackendError,
    ConfigError,
    DatasetError,
    DatasetFormatError,
    DataSourceError,
    MediaError,
    MissingDependencyError,
    OutputExistsError,
    PluginError,
    RecipeError,
    ResumeError,
    RowError,
    RunError,
    SFTKitError,
)
from trl_sft_kit.formats import FormatDetector, FormatMatch, FormatOptions, available_formats, register_format
from trl_sft_kit.inspection import InspectReport
from trl_sft_kit.packing import Packer, available_packers, register_packer
from trl_sft_kit.recipe import SFTRecipe
from trl_sft_kit.result import TrainResult, load_result
from trl_sft_kit.specs import (
    DatasetSpec,
    LoraSpec,
    LossSpec,
    ModelSpec,
    NeftuneSpec,
    PackingSpec,
    QuantizationSpec,
    TokensSpec,
)

__all__ = [
    "BackendError",
    "Compiled",
    "ConfigError",
    "DataSourceError",
    "DatasetError",
    "DatasetFormatError",
    "DatasetReport",
    "DatasetSpec",
    "FormatDetector",
    "FormatMatch",
    "FormatOptions",
    "InspectReport",
    "LoraSpec",
    "LossSpec",
    "MediaError",
    "MissingDependencyError",
    "ModelSpec",
    "NeftuneSpec",
    "OutputExistsError",
    "Packer",
    "PackingSpec",
    "PluginError",
    "QuantizationSpec",
    "RecipeError",
    "ResumeError",
    "RowError",
    "RunError",
    "SFTKitError",
    "SFTRecipe",
    "SkippedRow",
    "TokensSpec",
    "TrainResult",
    "__version__",
    "available_formats",
    "available_packers",
    "load_result",
    "register_format",
    "register_packer",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("trl-sft-kit")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(f"module 'trl_sft_kit' has no attribute {name!r}")
