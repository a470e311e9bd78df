"""The recipe the reliability tests train, and its one uninterrupted run that the others compare with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe, TrainResult

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"

RecipeFor = Callable[..., SFTRecipe]


@pytest.fixture(scope="session")
def recipe_for(tiny_model_dir: Path) -> RecipeFor:
    """``recipe_for(output_dir, **training)``: a LoRA run of 4 short steps on chat data, saving every 2.

    LoRA dropout stays on, so that resuming must restore the random state too; the seed is the default.
    """

    def make(output_dir: Path, *, data: Path = CHAT, **training: Any) -> SFTRecipe:
        fields: dict[str, Any] = {
            "output_dir": str(output_dir),
            "max_length": 64,
            "per_device_train_batch_size": 4,
            "logging_steps": 1,
            "max_steps": 4,
            "save_steps": 2,
            "learning_rate": 1e-2,
            "activation_checkpointing": False,
            "disable_tqdm": True,
        }
        fields.update(training)
        return SFTRecipe().model(tiny_model_dir).dataset(data).lora(r=4, alpha=8).training(**fields)

    return make


@pytest.fixture(scope="session")
def reference_run(recipe_for: RecipeFor, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The recipe trained once, start to end, without interruption."""
    return recipe_for(tmp_path_factory.mktemp("reference") / "out").train()
