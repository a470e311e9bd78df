"""Evaluation data: a held-out fraction or count, or a separate set; the trainer evaluates on it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.compile import config_kwargs
from trl_sft_kit.data.pipeline import prepare_training_data

CHAT_ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is {n} + {n}?"},
            {"role": "assistant", "content": str(2 * n)},
        ]
    }
    for n in range(6)
]


def test_a_fraction_is_held_out_by_the_seed_without_overlap(data_file: Any, tokenizer_of: Any) -> None:
    chat = data_file("messages", 40)
    recipe = SFTRecipe().dataset(chat, eval=0.1).training(max_length=256, seed=5)
    data = prepare_training_data(recipe, tokenizer_of())
    assert data.eval_dataset is not None
    assert (len(data.dataset), len(data.eval_dataset)) == (36, 4)
    train = {tuple(ids) for ids in data.dataset["input_ids"]}
    held = {tuple(ids) for ids in data.eval_dataset["input_ids"]}
    assert not train & held
    assert data.mixture is not None and data.mixture.sources[0].eval_rows == 4
    again = prepare_training_data(recipe, tokenizer_of())
    assert (
        again.eval_dataset is not None and again.eval_dataset["input_ids"] == data.eval_dataset["input_ids"]
    )
    other_seed = prepare_training_data(recipe.training(seed=6), tokenizer_of())
    assert other_seed.eval_dataset is not None
    assert other_seed.eval_dataset["input_ids"] != data.eval_dataset["input_ids"]


def test_a_count_or_a_separate_set(data_file: Any, tokenizer_of: Any) -> None:
    chat = data_file("messages", 20)
    counted = prepare_training_data(
        SFTRecipe().dataset(chat, eval=3).training(max_length=256), tokenizer_of()
    )
    assert counted.eval_dataset is not None and len(counted.eval_dataset) == 3 and len(counted.dataset) == 17

    separate = data_file("alpaca", 5, name="held-out.jsonl")  # its own format, detected on its own
    data = prepare_training_data(
        SFTRecipe().dataset(chat, eval=separate).training(max_length=256), tokenizer_of()
    )
    assert data.eval_dataset is not None and len(data.eval_dataset) == 5 and len(data.dataset) == 20
    assert data.mixture is not None and data.mixture.sources[0].eval_source == str(separate)

    inline = prepare_training_data(
        SFTRecipe().dataset(chat, eval=CHAT_ROWS).training(max_length=256), tokenizer_of()
    )
    assert inline.eval_dataset is not None and len(inline.eval_dataset) == len(CHAT_ROWS)


def test_eval_rows_are_packed_or_not_as_packing_says(data_file: Any, tokenizer_of: Any) -> None:
    chat = data_file("messages", 30)
    recipe = SFTRecipe().dataset(chat, eval=10).training(max_length=64)
    packed = prepare_training_data(recipe.packing("ffd"), tokenizer_of())
    assert packed.eval_dataset is not None and "seq_lengths" in packed.eval_dataset.column_names
    assert packed.eval_packing is not None and packed.eval_packing.sequences == 10
    unpacked = prepare_training_data(recipe.packing("ffd", eval=False), tokenizer_of())
    assert unpacked.eval_dataset is not None and unpacked.eval_packing is None
    assert unpacked.eval_dataset.column_names == ["input_ids", "labels"]
    assert max(len(ids) for ids in unpacked.eval_dataset["input_ids"]) <= 64  # truncated instead


def test_the_schedule_defaults_to_each_epoch_and_follows_the_user() -> None:
    with_eval = SFTRecipe().dataset("a.jsonl", eval=0.05)
    assert config_kwargs(with_eval)["eval_strategy"] == "epoch"
    chosen = config_kwargs(with_eval.training(eval_strategy="steps", eval_steps=50))
    assert (chosen["eval_strategy"], chosen["eval_steps"]) == ("steps", 50)
    assert "eval_strategy" not in config_kwargs(SFTRecipe().dataset("a.jsonl"))


def test_validate_refuses_a_schedule_without_eval_data_and_bad_eval_values() -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().dataset("a.jsonl").training(eval_strategy="steps").validate()
    assert any("eval_strategy='steps' but no evaluation data" in problem for problem in info.value.problems)
    for bad, message in ((1.5, "must be > 0 and < 1"), (0, "must be >= 1"), (True, "must be a fraction")):
        with pytest.raises(RecipeError, match=message):
            SFTRecipe().dataset("a.jsonl", eval=bad)


def test_eval_too_large_for_the_source(data_file: Any, tokenizer_of: Any) -> None:
    chat = data_file("messages", 4)
    with pytest.raises(RecipeError, match="leaving none to train on"):
        prepare_training_data(SFTRecipe().dataset(chat, eval=4), tokenizer_of())


@pytest.mark.slow
def test_training_evaluates_on_the_schedule_and_reports_eval_loss(
    tiny_model_dir: Any, data_file: Any, quick: dict[str, Any]
) -> None:
    chat, alpaca = data_file("messages", 24), data_file("alpaca", 8)
    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(chat, eval=0.25)
        .mix(alpaca, weight=0.25)
        .lora(r=4)
        .packing("ffd")
        .training(**quick, max_steps=4, eval_strategy="steps", eval_steps=2)
    )
    compiled = recipe.compile()
    assert compiled.data is not None and compiled.data.mixture is not None
    assert compiled.data.eval_dataset is not None and len(compiled.data.eval_dataset) > 0
    assert compiled.trainer.eval_dataset is compiled.data.eval_dataset
    assert compiled.data.packing is not None
    assert len(compiled.data.dataset) == compiled.data.packing.rows
    result = compiled.train()
    evaluations = [entry for entry in compiled.trainer.state.log_history if "eval_loss" in entry]
    assert [entry["step"] for entry in evaluations] == [2, 4]  # eval_steps=2 over 4 steps
    assert math.isfinite(result.metrics["eval_loss"])
    assert "shares" not in result.metrics and "of the mixture" in compiled.summary()
