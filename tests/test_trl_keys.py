"""A ``trl sft`` YAML (TRL's ModelConfig / ScriptArguments keys) reads as the recipe the kit's keys give."""

from __future__ import annotations

from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.config import recipe_from_dict
from trl_sft_kit.errors import ConfigError

TRL_YAML = """\
model_name_or_path: Qwen/Qwen2.5-0.5B
model_revision: main
dtype: bfloat16
attn_implementation: sdpa
dataset_name: trl-lib/Capybara
dataset_config: default
dataset_train_split: train
use_peft: true
lora_r: 8
lora_alpha: 16
lora_dropout: 0.1
lora_target_modules: [q_proj, v_proj]
lora_task_type: CAUSAL_LM
use_dora: true
load_in_4bit: true
bnb_4bit_quant_type: nf4
use_bnb_nested_quant: true
learning_rate: 2.0e-4
max_length: 512
"""


def test_a_trl_sft_config_reads_as_the_kit_recipe(tmp_path: Path) -> None:
    path = tmp_path / "sft.yaml"
    path.write_text(TRL_YAML, encoding="utf-8")
    recipe = SFTRecipe.from_yaml(path)
    expected = (
        SFTRecipe()
        .model("Qwen/Qwen2.5-0.5B", revision="main", dtype="bfloat16", attn_implementation="sdpa")
        .dataset("trl-lib/Capybara", config="default", split="train")
        .lora(r=8, alpha=16, dropout=0.1, target_modules=["q_proj", "v_proj"], use_dora=True)
        .quantize("4bit", quant_type="nf4", double_quant=True)
        .training(learning_rate=2e-4, max_length=512)
    )
    assert recipe == expected


def test_load_in_8bit_and_use_peft_false() -> None:
    recipe = recipe_from_dict(
        {"model_name_or_path": "gpt2", "load_in_8bit": True, "use_peft": False, "lora_r": 8}
    )
    assert recipe.quantization_spec is not None and recipe.quantization_spec.mode == "8bit"
    assert recipe.lora_spec is None


def test_peft_names_in_the_lora_section() -> None:
    recipe = recipe_from_dict({"lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.2}})
    assert recipe.lora_spec is not None
    assert (recipe.lora_spec.r, recipe.lora_spec.alpha, recipe.lora_spec.dropout) == (4, 8, 0.2)
    with pytest.raises(ConfigError, match=r"'lora\.lora_alpha' and 'lora\.alpha'"):
        recipe_from_dict({"lora": {"alpha": 4, "lora_alpha": 8}})


@pytest.mark.parametrize(
    ("data", "wanted"),
    [
        ({"load_in_4bit": True, "use_4bit": True}, "'load_in_4bit' \\(TRL's name\\) and 'use_4bit'"),
        ({"dataset_name": "a/b", "dataset_name_or_path": "c/d"}, "'dataset_name'"),
        ({"model": {"source": "gpt2", "revision": "x"}, "model_revision": "y"}, "'model.revision'"),
        ({"lora_task_type": "SEQ_CLS"}, "causal language models"),
    ],
)
def test_a_trl_key_and_the_kit_key_together_are_refused(data: dict, wanted: str) -> None:
    with pytest.raises(ConfigError, match=wanted):
        recipe_from_dict(data)
