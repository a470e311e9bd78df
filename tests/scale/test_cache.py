"""The preprocessing cache: a second compile reuses the prepared data; a change to its inputs redoes it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data import cache, source_conversion, source_tokenization
from trl_sft_kit.data.pipeline import PreparedData, prepare_training_data


def prepare(recipe: SFTRecipe, tokenizer: Any) -> PreparedData:
    return prepare_training_data(recipe, tokenizer, use_cache=True)


def state(data: PreparedData) -> str:
    assert data.cache is not None
    return data.cache.state


@pytest.fixture()
def recipe(data_file: Any) -> SFTRecipe:
    return (
        SFTRecipe()
        .dataset(data_file("messages", 30), eval=0.1)
        .mix(data_file("alpaca", 10), weight=0.25)
        .packing("ffd")
        .training(max_length=128, seed=3)
        .cache(True)
    )


def test_a_second_compile_is_a_hit_and_converts_nothing(
    recipe: SFTRecipe, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch, cache_root: Path
) -> None:
    first = prepare(recipe, tokenizer_of())
    assert state(first) == "miss" and "stored" in first.cache.reason  # type: ignore[union-attr]
    assert len(list(cache_root.iterdir())) == 1

    def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the data was prepared again")

    monkeypatch.setattr(source_conversion, "convert_rows", must_not_run)
    monkeypatch.setattr(source_tokenization, "tokenize_dataset", must_not_run)
    tokenizer = tokenizer_of()
    second = prepare(recipe, tokenizer)
    assert state(second) == "hit" and "preprocessing cache: hit" in second.summary()
    assert second.dataset["input_ids"] == first.dataset["input_ids"]
    assert second.dataset["seq_lengths"] == first.dataset["seq_lengths"]
    assert second.eval_dataset is not None and first.eval_dataset is not None
    assert second.eval_dataset["labels"] == first.eval_dataset["labels"]
    for name in (
        "report",
        "tokenization",
        "packing",
        "eval_tokenization",
        "eval_packing",
        "mixture",
        "eos_token",
    ):
        assert getattr(second, name) == getattr(first, name), name
    assert tokenizer.eos_token == (first.eos_token or tokenizer_of().eos_token)  # as a miss leaves it


def test_a_data_change_is_a_miss_and_the_same_content_a_hit(recipe: SFTRecipe, tokenizer_of: Any) -> None:
    assert state(prepare(recipe, tokenizer_of())) == "miss"
    path = Path(recipe.dataset_specs[0].source)
    text = path.read_text(encoding="utf-8")
    os.utime(path, (1, 1))  # a new modification time, the same bytes: still a hit
    assert state(prepare(recipe, tokenizer_of())) == "hit"
    path.write_text(text.replace("?", "?!", 1), encoding="utf-8")
    changed = prepare(recipe, tokenizer_of())
    assert state(changed) == "miss"
    assert state(prepare(recipe, tokenizer_of())) == "hit"


def test_a_tokenizer_or_template_change_is_a_miss(recipe: SFTRecipe, tokenizer_of: Any) -> None:
    from trl_sft_kit.testing import bundled_chat_template

    assert state(prepare(recipe, tokenizer_of())) == "miss"
    templated = tokenizer_of()
    templated.chat_template = bundled_chat_template("qwen2_5") + "{# another template #}"
    assert state(prepare(recipe, templated)) == "miss"
    grown = tokenizer_of()
    grown.add_tokens(["<new-token>"])
    assert state(prepare(recipe, grown)) == "miss"
    padded = tokenizer_of()
    padded.pad_token = padded.eos_token if padded.pad_token != padded.eos_token else "<|im_start|>"
    assert state(prepare(recipe, padded)) == "miss"
    assert state(prepare(recipe, tokenizer_of())) == "hit"


def test_the_data_part_of_the_recipe_is_in_the_key_and_the_rest_is_not(
    recipe: SFTRecipe, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert state(prepare(recipe, tokenizer_of())) == "miss"
    assert state(prepare(recipe.training(learning_rate=1e-3, num_train_epochs=7), tokenizer_of())) == "hit"
    for changed in (
        recipe.training(max_length=96),
        recipe.training(seed=4),
        recipe.packing("bfd"),
        recipe.loss("all"),
        recipe.mix(recipe.dataset_specs[0].source, count=3),
    ):
        assert state(prepare(changed, tokenizer_of())) == "miss"
    from trl_sft_kit.data import cache_key

    real = cache_key._version
    monkeypatch.setattr(cache_key, "_version", lambda name: "99.0" if name == "trl-sft-kit" else real(name))
    assert state(prepare(recipe, tokenizer_of())) == "miss"  # another version of the kit


def test_turning_the_cache_off(
    recipe: SFTRecipe, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch, cache_root: Path
) -> None:
    off = prepare(recipe.cache(False), tokenizer_of())
    assert state(off) == "off" and "cache(False)" in off.cache.reason  # type: ignore[union-attr]
    monkeypatch.setenv("TRL_SFT_KIT_CACHE", "off")
    assert state(prepare(recipe, tokenizer_of())) == "off"
    assert not cache_root.exists()


def test_by_default_only_large_file_sources_are_cached(
    recipe: SFTRecipe, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = recipe.cache(None)
    assert state(prepare(auto, tokenizer_of())) == "off"  # a few kB: quicker to prepare than to load
    monkeypatch.setattr(cache, "AUTO_MIN_BYTES", 1024)
    assert state(prepare(auto, tokenizer_of())) == "miss"
    inline = SFTRecipe().dataset([{"text": "hello"}, {"text": "world"}]).training(max_length=32)
    assert state(prepare(inline, tokenizer_of())) == "off"
    assert state(prepare(inline.cache(True), tokenizer_of())) == "miss"
    assert state(prepare(inline.cache(True), tokenizer_of())) == "hit"


def test_a_damaged_entry_is_prepared_again(recipe: SFTRecipe, tokenizer_of: Any, cache_root: Path) -> None:
    first = prepare(recipe, tokenizer_of())
    assert first.cache is not None and first.cache.path is not None
    entry = Path(first.cache.path)
    shutil.rmtree(entry / "train")
    again = prepare(recipe, tokenizer_of())
    assert state(again) == "miss" and again.dataset["input_ids"] == first.dataset["input_ids"]
    assert state(prepare(recipe, tokenizer_of())) == "hit"
    assert cache.clear_cache() == 1 and not any((cache_root / "data").iterdir())


@pytest.mark.slow
def test_compile_reports_the_hit(tiny_model_dir: Path, data_file: Any, quick: dict[str, Any]) -> None:
    recipe = (
        SFTRecipe().model(tiny_model_dir).dataset(data_file("messages", 20)).cache(True).training(**quick)
    )
    first, second = recipe.compile(), recipe.compile()
    assert first.data is not None and second.data is not None
    assert (first.data.cache.state, second.data.cache.state) == ("miss", "hit")  # type: ignore[union-attr]
    assert second.data.dataset["input_ids"] == first.data.dataset["input_ids"]
