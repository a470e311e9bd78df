"""validate() refuses numeric fields out of range, naming field, value and range, before loading."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.training_ranges import training_range_problems

NAN = math.nan
INF = math.inf

BAD = [
    ("learning_rate", NAN, ">= 0"),
    ("learning_rate", -1e-4, ">= 0"),
    ("learning_rate", INF, ">= 0"),
    ("per_device_train_batch_size", 0, ">= 1"),
    ("per_device_train_batch_size", -2, ">= 1"),
    ("per_device_eval_batch_size", 0, ">= 1"),
    ("gradient_accumulation_steps", 0, ">= 1"),
    ("max_steps", -5, "or -1"),
    ("num_train_epochs", INF, ">= 0"),
    ("num_train_epochs", NAN, ">= 0"),
    ("num_train_epochs", -1, ">= 0"),
    ("warmup_steps", -1, ">= 0"),
    ("warmup_steps", NAN, ">= 0"),
    ("max_length", 0, ">= 1"),
    ("weight_decay", -0.01, ">= 0"),
    ("save_steps", 0, "> 0"),
    ("eval_steps", -10, "> 0"),
    ("logging_steps", 0, "> 0"),
]


def _recipe(**fields: Any) -> SFTRecipe:
    return SFTRecipe().model("tiny").dataset([{"text": "hello"}]).training(**fields)


@pytest.mark.parametrize(("field", "value", "allowed"), BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_validate_refuses_a_value_out_of_range(field: str, value: float, allowed: str) -> None:
    with pytest.raises(RecipeError) as caught:
        _recipe(**{field: value}).validate()
    message = str(caught.value)
    assert repr(field) in message and repr(value) in message and allowed in message, message


@pytest.mark.parametrize(
    "fields",
    [
        {"max_steps": -1},
        {"max_steps": 0, "num_train_epochs": 0.5},
        {"learning_rate": 0.0, "weight_decay": 0.0},
        {"save_steps": 0.1, "logging_steps": 1, "max_length": None},
    ],
)
def test_validate_accepts_values_in_range(fields: dict[str, Any]) -> None:
    assert _recipe(**fields).validate().training_fields


def test_a_range_is_checked_under_its_alias_too() -> None:
    with pytest.raises(RecipeError, match="'per_device_train_batch_size' must be a finite number >= 1"):
        _recipe(batch_size=0).validate()


@pytest.mark.parametrize(
    ("section", "text", "words"),
    [
        ("lora", "lora: {r: 0}", "'r' must be > 0 (got 0)"),
        ("lora", "lora: {alpha: .inf}", "'alpha' must be a finite number (got inf)"),
        ("lora", "lora: {dropout: 1.0}", "'dropout' must be < 1.0 (got 1.0)"),
        ("neftune", "neftune: .nan", "'alpha' must be a finite number (got nan)"),
        ("neftune", "neftune: -1", "'alpha' must be > 0 (got -1)"),
        ("training", "training: {learning_rate: .nan}", "'learning_rate' must be a finite number >= 0"),
        ("training", "training: {max_steps: -3}", "'max_steps' must be a finite number >= 0 or -1 (got -3)"),
        ("training", "training: {num_train_epochs: .inf}", "'num_train_epochs' must be a finite number"),
    ],
)
def test_a_yaml_recipe_out_of_range_is_refused(section: str, text: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model: {{source: tiny}}\ndataset: {{source: data.jsonl}}\n{text}\n", encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        SFTRecipe.from_yaml(path).validate(sources=False)
    assert words in str(caught.value)


def test_each_problem_is_one_sentence() -> None:
    problems = training_range_problems({"learning_rate": NAN, "max_length": 0, "seed": -1, "bf16": True})
    assert problems == [
        "training field 'learning_rate' must be a finite number >= 0 (got nan).",
        "training field 'max_length' must be a finite number >= 1 (got 0).",
    ]
