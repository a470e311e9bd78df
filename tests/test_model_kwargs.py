"""``.model(..., **model_init_kwargs)`` reaches ``from_pretrained``; hub datasets take config and revision."""

from __future__ import annotations

from pathlib import Path

import pytest

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.config import recipe_from_dict, recipe_to_dict
from trl_sft_kit.testing import write_sample_dataset


def test_model_init_kwargs_reach_from_pretrained(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_sample_dataset(tmp_path / "chat.jsonl", "messages", n=4)
    recipe = (
        SFTRecipe()
        .model(tiny_model_dir, dtype="float32", low_cpu_mem_usage=True, attention_dropout=0.25)
        .dataset(data)
        .training(output_dir=str(tmp_path / "out"), max_steps=1, max_length=64, report_to="none")
    )
    model = recipe.compile().trainer.model
    assert model.config.attention_dropout == 0.25  # from_pretrained took it (a config override)


def test_model_init_kwargs_owned_by_a_method_are_refused() -> None:
    with pytest.raises(RecipeError, match=r"'quantization_config' \(set by \.quantize\(\)\)"):
        SFTRecipe().model("gpt2", quantization_config={})
    with pytest.raises(RecipeError, match=r"'torch_dtype' \(set by \.model\(\.\.\., dtype=\.\.\.\)\)"):
        SFTRecipe().model("gpt2", torch_dtype="bfloat16")


def test_model_init_kwargs_round_trip_through_a_config() -> None:
    recipe = SFTRecipe().model("gpt2", device_map="auto", low_cpu_mem_usage=True)
    data = recipe_to_dict(recipe)
    init = {"device_map": "auto", "low_cpu_mem_usage": True}
    assert data["model"] == {"source": "gpt2", "model_init_kwargs": init}
    assert recipe_from_dict(data) == recipe
    # TRL's SFTConfig field of that name, flat, means the same
    assert recipe_from_dict({"model_name_or_path": "gpt2", "model_init_kwargs": init}) == recipe
    assert "device_map='auto'" in repr(recipe.model_spec)
    assert "from_pretrained(..., device_map='auto', low_cpu_mem_usage=True)" in recipe.explain()


def test_hub_dataset_config_and_revision() -> None:
    recipe = SFTRecipe().dataset("org/data", config="en", revision="v1.0").mix("org/more", config="fr")
    first, second = recipe.dataset_specs
    assert (first.config, first.revision, second.config, second.revision) == ("en", "v1.0", "fr", None)
    assert repr(first) == "DatasetSpec('org/data', config='en', revision='v1.0')"
    data = recipe_to_dict(recipe)
    assert data["dataset"][0] == {"source": "org/data", "config": "en", "revision": "v1.0"}
    assert recipe_from_dict(data) == recipe
