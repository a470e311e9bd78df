"""Streaming: sources read lazily while training, converted, tokenized and packed on the fly."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import RecipeError, RowError, SFTRecipe
from trl_sft_kit.data.pipeline import prepare_training_data
from trl_sft_kit.data.streaming import DETECTION_ROWS
from trl_sft_kit.testing import sample_rows


def write_jsonl(path: Path, rows: list[Any], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + tail, encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_streamed_run_packs_on_the_stream_and_trains(
    tiny_model_dir: Path, data_file: Any, quick: dict[str, Any]
) -> None:
    from datasets import IterableDataset

    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(data_file("messages", 48), streaming=True)
        .lora(r=4)
        .packing("ffd")
        .training(**{**quick, "max_length": 96}, max_steps=3)
        .cache(True)
    )
    compiled = recipe.compile()
    data = compiled.data
    assert data is not None and data.streamed and data.cache is None  # streams are never cached
    assert isinstance(compiled.trainer.train_dataset, IterableDataset)
    rows = list(data.dataset)
    assert rows and all(len(row["input_ids"]) <= 96 for row in rows)
    assert all(sum(row["seq_lengths"]) == len(row["input_ids"]) for row in rows)
    assert any(len(row["seq_lengths"]) > 1 for row in rows)  # several sequences share a packed row
    assert len(rows) < 48
    output = compiled.trainer.train()
    assert output.global_step == 3 and math.isfinite(output.training_loss)


def test_rows_are_read_lazily_and_bad_lines_are_named_when_reached(tmp_path: Path, tokenizer_of: Any) -> None:
    rows = sample_rows("prompt_completion", DETECTION_ROWS + 10)
    path = write_jsonl(tmp_path / "big.jsonl", rows, tail="{not json\n")
    recipe = SFTRecipe().dataset(path, streaming=True).training(max_length=128, max_steps=1)
    data = prepare_training_data(recipe, tokenizer_of())  # only the first rows were read
    assert data.report.rows_read == DETECTION_ROWS
    assert "read, converted and tokenized while training" in data.report.summary()
    first = next(iter(data.dataset))
    assert set(first) == {"input_ids", "labels"}
    with pytest.raises(RowError) as info:
        list(data.dataset)
    assert info.value.line == len(rows) + 1 and "not valid JSON" in str(info.value)
    skipping = prepare_training_data(
        SFTRecipe().dataset(path, streaming=True, on_bad_rows="skip").training(max_length=128, max_steps=1),
        tokenizer_of(),
    )
    assert len(list(skipping.dataset)) == len(rows)


def test_eval_rows_come_from_the_start_of_the_stream(tmp_path: Path, tokenizer_of: Any) -> None:
    path = write_jsonl(
        tmp_path / "text.jsonl", [{"text": f"Line number {n} of the stream."} for n in range(20)]
    )
    recipe = SFTRecipe().dataset(path, streaming=True, eval=5).training(max_length=64, max_steps=1)
    data = prepare_training_data(recipe, tokenizer_of())
    assert data.eval_dataset is not None and len(data.eval_dataset) == 5
    trained = [row["input_ids"] for row in data.dataset]
    assert len(trained) == 15
    assert not {tuple(ids) for ids in trained} & {tuple(ids) for ids in data.eval_dataset["input_ids"]}


def test_streamed_sources_mix_by_weight(tmp_path: Path, tokenizer_of: Any) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": f"alpha {n}"} for n in range(30)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": f"beta {n}"} for n in range(6)])
    recipe = (
        SFTRecipe()
        .dataset(a, streaming=True, weight=0.5)
        .mix(b, streaming=True, weight=0.5)
        .training(max_length=32, max_steps=1, seed=0)
    )
    tokenizer = tokenizer_of()
    data = prepare_training_data(recipe, tokenizer)
    decoded = [tokenizer.decode(row["input_ids"]) for row in itertools.islice(data.dataset, 40)]
    betas = sum("beta" in text for text in decoded)
    assert 10 <= betas <= 30  # about half the draws, the small source read again as it runs out
    assert decoded == [tokenizer.decode(row["input_ids"]) for row in itertools.islice(data.dataset, 40)]
    assert data.mixture is not None and data.mixture.streamed


def test_streaming_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(RecipeError) as info:
        SFTRecipe().dataset("big.jsonl", streaming=True).validate()
    assert any("max_steps" in problem for problem in info.value.problems)
    with pytest.raises(RecipeError, match="fraction of a stream"):
        SFTRecipe().dataset("big.jsonl", streaming=True, eval=0.1)
    with pytest.raises(RecipeError, match="length is not known"):
        SFTRecipe().dataset("big.jsonl", streaming=True, count=10)
    mixed = SFTRecipe().dataset("a.jsonl", streaming=True).mix("b.jsonl", weight=0.2).training(max_steps=5)
    with pytest.raises(RecipeError) as info:
        mixed.validate()
    assert any("stream all of them" in problem for problem in info.value.problems)
