"""Every SFTConfig data field the kit's own preparation bypasses is honoured or refused, never ignored."""

from __future__ import annotations

from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.compile import config_kwargs
from trl_sft_kit.data import cache
from trl_sft_kit.data.pipeline import prepare_training_data
from trl_sft_kit.errors import RecipeError


def problems_of(recipe: SFTRecipe) -> str:
    with pytest.raises(RecipeError) as caught:
        recipe.validate()
    return " ".join(caught.value.problems)


ROWS = [{"prompt": f"Question {n}?", "completion": f" Answer {n}."} for n in range(12)]


@pytest.mark.parametrize(
    ("fields", "kit_setting"),
    [
        ({"dataset_num_proc": 0}, "1 prepares the data in this process"),
        ({"truncation_mode": "keep_end"}, ".training(max_length=None)"),
        ({"dataset_kwargs": {"add_special_tokens": False}}, ".dataset(source, ...)"),
        ({"dataset_kwargs": {"skip_prepare_dataset": False}}, "skip_prepare_dataset=False"),
    ],
)
def test_validate_refuses_data_fields_it_cannot_honour(fields: dict[str, Any], kit_setting: str) -> None:
    recipe = SFTRecipe().dataset(ROWS).training(**fields)
    assert kit_setting in problems_of(recipe)


def test_padding_free_is_the_packers_choice_when_packing() -> None:
    recipe = SFTRecipe().dataset(ROWS).packing("ffd").training(padding_free=False)
    assert "padding_free with .packing()" in problems_of(recipe)


def test_padding_free_without_packing_reaches_the_collator() -> None:
    recipe = SFTRecipe().dataset(ROWS).training(padding_free=True).validate()
    assert config_kwargs(recipe)["padding_free"] is True


def test_streaming_refuses_fields_that_need_the_whole_dataset() -> None:
    recipe = (
        SFTRecipe()
        .dataset(ROWS, streaming=True)
        .training(max_steps=2, dataset_num_proc=2, shuffle_dataset=True)
    )
    found = problems_of(recipe)
    assert "dataset_num_proc with streaming=True" in found
    assert "shuffle_dataset with streaming=True" in found


@pytest.mark.parametrize(
    ("field", "method"),
    [
        ("eval_packing", ".packing(strategy, eval=True)"),
        ("packing_strategy", ".packing(strategy)"),
        ("completion_only_loss", '.loss("completion_only")'),
        ("assistant_only_loss", '.loss("assistant_only")'),
        ("dataset_text_field", ".dataset(source, text_field=...)"),
    ],
)
def test_training_refuses_fields_a_method_sets(field: str, method: str) -> None:
    with pytest.raises(RecipeError, match=method.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        SFTRecipe().training(**{field: True})


def test_shuffle_dataset_shuffles_the_training_rows(tokenizer_of: Any) -> None:
    recipe = SFTRecipe().dataset(ROWS).training(max_length=64, seed=1)
    plain = prepare_training_data(recipe, tokenizer_of()).dataset["input_ids"]
    shuffled = prepare_training_data(recipe.training(shuffle_dataset=True), tokenizer_of()).dataset[
        "input_ids"
    ]
    again = prepare_training_data(recipe.training(shuffle_dataset=True), tokenizer_of()).dataset["input_ids"]
    assert shuffled != plain and sorted(shuffled) == sorted(plain)
    assert again == shuffled  # drawn from the seed
    key = cache.key_parts(recipe, tokenizer_of())["recipe"]
    assert key != cache.key_parts(recipe.training(shuffle_dataset=True), tokenizer_of())["recipe"]
