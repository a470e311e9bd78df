"""Mixtures: several sources, each in its own format, mixed by weight or count, reproducibly from the seed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.data.mixture import hold_out, mixture_problems, plan_rows, rng_for, take_rows
from trl_sft_kit.data.pipeline import prepare_training_data

# ------------------------------------------------------------------------------------------ planning


def test_plan_rows_by_weight_count_and_whole_sources() -> None:
    # every source weighted: shares of a mixture as large as the sources together
    assert plan_rows([100, 10], [0.7, 0.3], [None, None]) == [77, 33]
    # a fixed source takes every row; the weighted one becomes 30% of the whole
    assert plan_rows([40, 10], [None, 0.3], [None, None]) == [40, 17]
    # counts are exact, above or below the source's size
    assert plan_rows([40, 10], [None, None], [5, 25]) == [5, 25]
    # a tiny weight still gives a row
    assert plan_rows([1000, 10], [0.999, 0.001], [None, None])[1] == 1


def test_plan_rows_refuses_weights_that_leave_no_room() -> None:
    with pytest.raises(RecipeError, match="sum to 1"):
        plan_rows([10, 10], [None, 1.0], [None, None])


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=5),
    data=st.data(),
)
def test_weighted_shares_match_the_weights(sizes: list[int], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.floats(0.01, 10), min_size=len(sizes), max_size=len(sizes)))
    plan = plan_rows(sizes, weights, [None] * len(sizes))
    total = sum(sizes)
    assert sum(plan) == total or min(plan) == 1  # exact, unless a tiny share was raised to one row
    for rows, weight in zip(plan, weights, strict=True):
        assert abs(rows - weight / sum(weights) * total) <= 1 + (rows == 1)


@settings(max_examples=200, deadline=None)
@given(available=st.integers(1, 300), wanted=st.integers(0, 1000), seed=st.integers(0, 2**31))
def test_take_rows_repeats_evenly_and_is_seeded(available: int, wanted: int, seed: int) -> None:
    taken = take_rows(available, wanted, rng_for(seed, 2))
    assert len(taken) == wanted
    counts = Counter(taken.tolist())
    assert set(counts) <= set(range(available))
    low = wanted // available
    assert all(low <= counts.get(index, 0) <= low + 1 for index in range(available))
    assert taken.tolist() == take_rows(available, wanted, rng_for(seed, 2)).tolist()


@settings(max_examples=200, deadline=None)
@given(available=st.integers(2, 500), fraction=st.floats(0.001, 0.5), seed=st.integers(0, 2**31))
def test_hold_out_splits_without_overlap(available: int, fraction: float, seed: int) -> None:
    train, held = hold_out(available, fraction, rng_for(seed, 1))
    assert len(held) >= 1 and len(train) >= 1
    assert sorted([*train.tolist(), *held.tolist()]) == list(range(available))
    assert held.tolist() == hold_out(available, fraction, rng_for(seed, 1))[1].tolist()


def test_hold_out_refuses_to_leave_nothing() -> None:
    with pytest.raises(RecipeError, match="leaving none to train on"):
        hold_out(5, 5, rng_for(0, 1), source="tiny.jsonl")


def test_validate_names_mixture_conflicts() -> None:
    recipe = SFTRecipe().dataset("a.jsonl").mix("b.jsonl", weight=0.6).mix("c.jsonl", weight=0.5)
    with pytest.raises(RecipeError) as info:
        recipe.validate()
    assert any("sum to 1.1" in problem and "'a.jsonl'" in problem for problem in info.value.problems)
    assert mixture_problems(SFTRecipe().dataset("a.jsonl").mix("b.jsonl", weight=0.3).dataset_specs) == []


def test_dataset_replaces_the_mixture_and_mix_adds() -> None:
    recipe = SFTRecipe().dataset("a.jsonl").mix("b.jsonl", weight=0.3).mix("c.jsonl", count=10)
    assert [spec.source for spec in recipe.dataset_specs] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert recipe.dataset("d.jsonl").dataset_specs == SFTRecipe().dataset("d.jsonl").dataset_specs
    assert SFTRecipe().mix("a.jsonl") == SFTRecipe().dataset("a.jsonl")
    with pytest.raises(RecipeError, match=r"weight=0\.3 and count=5"):
        SFTRecipe().mix("a.jsonl", weight=0.3, count=5)
    with pytest.raises(RecipeError, match="'weight' must be > 0"):
        SFTRecipe().mix("a.jsonl", weight=0)


# ------------------------------------------------------------------------------------------ the data stage


def test_weights_up_sample_a_small_source_and_the_report_shows_shares(
    data_file: Any, tokenizer_of: Any
) -> None:
    chat, alpaca = data_file("messages", 40), data_file("alpaca", 10)
    recipe = SFTRecipe().dataset(chat).mix(alpaca, weight=0.3).training(max_length=256, seed=1)
    recipe = recipe.loss("trl")  # TRL's default: every token of chat rows, the completion of the others
    data = prepare_training_data(recipe, tokenizer_of())
    mixture = data.mixture
    assert mixture is not None
    chat_share, alpaca_share = mixture.sources
    assert (chat_share.format, alpaca_share.format) == ("messages", "alpaca")
    assert (chat_share.taken, chat_share.rows) == (40, 40)
    assert (alpaca_share.taken, alpaca_share.rows) == (17, 10)  # up-sampled: 10 rows give 17
    assert alpaca_share.repeats == pytest.approx(1.7)
    assert mixture.shares()[str(alpaca)] == pytest.approx(0.3, abs=0.01)
    assert len(data.dataset) == mixture.total == 57
    notes = "\n".join(data.report.notes)
    assert "29.8% of the mixture" in notes and "x1.70" in notes
    # each source keeps its own loss: chat rows train on everything, alpaca rows on the completion only
    assert data.tokenization.loss == "all + completion_only"
    labels = [sum(label != -100 for label in row) for row in data.dataset["labels"]]
    lengths = [len(row) for row in data.dataset["input_ids"]]
    assert any(n < length for n, length in zip(labels, lengths, strict=True))  # completion-only rows
    assert any(n == length for n, length in zip(labels, lengths, strict=True))  # chat rows


def test_weights_down_sample_and_counts_are_exact(data_file: Any, tokenizer_of: Any) -> None:
    big, small = data_file("prompt_completion", 60), data_file("text", 20)
    recipe = SFTRecipe().dataset(big, weight=0.25).mix(small, weight=0.75).training(max_length=128)
    data = prepare_training_data(recipe, tokenizer_of())
    assert data.mixture is not None
    assert [share.taken for share in data.mixture.sources] == [20, 60]  # 80 rows: 25% and 75%
    counted = SFTRecipe().dataset(big, count=7).mix(small, count=45).training(max_length=128)
    data = prepare_training_data(counted, tokenizer_of())
    assert data.mixture is not None and [share.taken for share in data.mixture.sources] == [7, 45]


def test_mixing_is_reproducible_from_the_seed(data_file: Any, tokenizer_of: Any) -> None:
    chat, text = data_file("messages", 30), data_file("text", 12)

    def mixed(seed: int) -> list[list[int]]:
        recipe = SFTRecipe().dataset(chat).mix(text, weight=0.4).training(max_length=128, seed=seed)
        return prepare_training_data(recipe, tokenizer_of()).dataset["input_ids"]

    first = mixed(3)
    assert first == mixed(3)
    assert mixed(4) != first  # another seed draws and orders other rows


def test_a_single_source_keeps_its_order(data_file: Any, tokenizer_of: Any) -> None:
    chat = data_file("messages", 12)
    data = prepare_training_data(SFTRecipe().dataset(chat).training(max_length=256), tokenizer_of())
    assert data.mixture is None
    written = [json.loads(line) for line in Path(chat).read_text(encoding="utf-8").splitlines()]
    assert [row["messages"] for row in data.rows] == [row["messages"] for row in written]
