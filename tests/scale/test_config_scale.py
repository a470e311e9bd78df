"""Mixtures, evaluation data, streaming, ``cache()`` and ``distributed()`` round-trip through YAML."""

from __future__ import annotations

import copy
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trl_sft_kit import ConfigError, RecipeError, SFTRecipe
from trl_sft_kit.specs import InlineRows

ROWS = [{"text": "held out"}, {"text": "also held out"}]


def rich() -> SFTRecipe:
    return (
        SFTRecipe()
        .model("Qwen/Qwen2.5-0.5B-Instruct")
        .dataset("chat.jsonl", eval=0.05, columns={"q": "prompt"})
        .mix("instructions.jsonl", weight=0.3, format="alpaca", eval="instructions-val.jsonl")
        .mix([{"text": "inline"}], count=50, eval=ROWS)
        .distributed(
            "fsdp", num_processes=8, num_machines=2, cpu_offload=True, transformer_layer_cls_to_wrap=["L"]
        )
        .cache(False)
        .training(max_steps=100, eval_strategy="steps", eval_steps=10)
    )


def test_a_mixture_round_trips_and_reads_as_a_list() -> None:
    recipe = rich()
    data = recipe.to_dict()
    assert data["dataset"] == [
        {"source": "chat.jsonl", "columns": {"q": "prompt"}, "eval": 0.05},
        {"source": "instructions.jsonl", "format": "alpaca", "weight": 0.3, "eval": "instructions-val.jsonl"},
        {"rows": [{"text": "inline"}], "count": 50, "eval_rows": ROWS},
    ]
    assert data["distributed"] == {
        "kind": "fsdp",
        "num_processes": 8,
        "num_machines": 2,
        "cpu_offload": True,
        "transformer_layer_cls_to_wrap": ["L"],
    }
    assert data["cache"] is False
    assert SFTRecipe.from_dict(data) == recipe
    again = SFTRecipe.from_yaml(recipe.to_yaml())
    assert again == recipe and hash(again) == hash(recipe) and again.to_yaml() == recipe.to_yaml()
    assert isinstance(again.more_datasets[1].eval, InlineRows)


def test_single_sources_and_short_forms_stay_as_they_were() -> None:
    assert SFTRecipe().dataset("a.jsonl").to_dict() == {"dataset": {"source": "a.jsonl"}}
    assert SFTRecipe().dataset("a.jsonl", streaming=True).to_dict() == {
        "dataset": {"source": "a.jsonl", "streaming": True}
    }
    assert SFTRecipe().distributed("ddp").to_dict() == {"distributed": "ddp"}
    recipe = SFTRecipe.from_yaml(
        textwrap.dedent(
            """\
            dataset: [chat.jsonl, {source: text.jsonl, weight: 0.2}]
            distributed: deepspeed_zero3
            cache: true
            """
        )
    )
    assert recipe == (
        SFTRecipe()
        .dataset("chat.jsonl")
        .mix("text.jsonl", weight=0.2)
        .distributed("deepspeed_zero3")
        .cache(True)
    )


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"dataset": [{"source": "a.jsonl"}, {"weight": 0.2}]}, "dataset[1]"),
        ({"dataset": [{"source": "a.jsonl", "weight": -1}]}, "dataset[0].weight"),
        ({"dataset": {"source": "a.jsonl", "eval": 2.5}}, "dataset.eval"),
        ({"dataset": {"source": "a.jsonl", "eval": 0.1, "eval_rows": ROWS}}, "dataset"),
        ({"dataset": []}, "dataset"),
        ({"distributed": {"kind": "fsdp", "offload": True}}, "distributed.offload"),
        ({"distributed": {"kind": "mpi"}}, "distributed"),
        ({"cache": "yes"}, "cache"),
    ],
)
def test_bad_sections_name_their_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict(data)
    assert info.value.key == key


NAMES = st.text(alphabet="abcdefghij_./-", min_size=1, max_size=12).filter(lambda s: s.strip())
ROW = st.fixed_dictionaries({"text": st.text(max_size=10)})
SOURCE_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "weight": st.floats(0.01, 5) | st.integers(1, 5),
        "eval": st.floats(0.01, 0.99) | st.integers(1, 100) | NAMES | st.lists(ROW, min_size=1, max_size=2),
        "format": st.sampled_from(["auto", "messages", "text"]),
        "on_bad_rows": st.sampled_from(["error", "skip"]),
    },
)
STEPS: st.SearchStrategy[tuple[str, Any, dict[str, Any]]] = st.one_of(
    st.tuples(
        st.sampled_from(["dataset", "mix"]), NAMES | st.lists(ROW, min_size=1, max_size=2), SOURCE_OPTIONS
    ),
    st.tuples(st.just("mix"), NAMES, st.fixed_dictionaries({"count": st.integers(1, 1000)})),
    st.tuples(st.just("dataset"), NAMES, st.fixed_dictionaries({"streaming": st.booleans()})),
    st.tuples(
        st.just("distributed"),
        st.sampled_from(["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3", None]),
        st.fixed_dictionaries(
            {}, optional={"num_processes": st.integers(1, 16), "num_machines": st.integers(1, 4)}
        ),
    ),
    st.tuples(st.just("cache"), st.sampled_from([True, False, None]), st.just({})),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEPS, max_size=6))
def test_random_scale_recipes_round_trip(steps: list[tuple[str, Any, dict[str, Any]]]) -> None:
    def build(parts: list[tuple[str, Any, dict[str, Any]]]) -> SFTRecipe:
        recipe = SFTRecipe()
        for method, argument, options in parts:
            replaces = method == "dataset" and recipe.dataset_spec is not None
            if replaces and ("weight" in options or "count" in options):
                # A weight on a call that replaces the data would drop the earlier source.
                with pytest.raises(RecipeError, match=r"\.mix\("):
                    getattr(recipe, method)(argument, **options)
                continue
            recipe = getattr(recipe, method)(argument, **options)
        return recipe

    recipe = build(steps)
    assert recipe == build(copy.deepcopy(steps))
    data = recipe.to_dict()
    assert SFTRecipe.from_dict(data) == recipe and SFTRecipe.from_dict(data).to_dict() == data
    text = recipe.to_yaml()
    assert SFTRecipe.from_yaml(text) == recipe and SFTRecipe.from_yaml(text).to_yaml() == text
