"""The model card's front matter is the Hub's schema (``ModelCardData``); hub ids follow the Hub's rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from trl_sft_kit import SFTRecipe
from trl_sft_kit.card import is_hub_id, render_card
from trl_sft_kit.card.record import _hub_datasets
from trl_sft_kit.data.sources import is_hub_id as source_is_hub_id


def front(card: str) -> dict:
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_front_matter_is_model_card_data_with_datasets_license_base_model_and_tags() -> None:
    info = {
        "base_model": "Qwen/Qwen2.5-0.5B",
        "kind": "lora",
        "lora": {"r": 8},
        "hub_datasets": ["trl-lib/Capybara"],
        "license": "apache-2.0",
    }
    card = render_card(info)
    meta = front(card)
    assert meta["datasets"] == ["trl-lib/Capybara"] and meta["license"] == "apache-2.0"
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B" and meta["tags"] == ["trl", "sft", "trl-sft-kit", "lora"]
    parsed = ModelCard(card).data  # huggingface_hub reads it back as its own metadata
    assert parsed.base_model == "Qwen/Qwen2.5-0.5B" and parsed.datasets == ["trl-lib/Capybara"]
    assert parsed.license == "apache-2.0" and "trl-sft-kit" in parsed.tags


def test_fields_left_empty_are_left_out() -> None:
    meta = front(render_card({"base_model": "/tmp/my model", "kind": "full"}))
    assert "datasets" not in meta and "license" not in meta and "base_model" not in meta
    assert meta["library_name"] == "transformers"


def test_hub_datasets_of_a_recipe(tmp_path: Path) -> None:
    local = tmp_path / "chat.jsonl"
    local.write_text('{"text": "hi"}\n', encoding="utf-8")
    recipe = SFTRecipe().dataset("trl-lib/Capybara", eval="org/held-out").mix(local).mix("data.jsonl")
    assert _hub_datasets(recipe) == ["trl-lib/Capybara", "org/held-out"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen/Qwen3-0.6B", True),
        ("gpt2", True),  # a canonical model without an owner is a Hub id too (the old card regex said no)
        ("org/a--b", False),  # the Hub forbids '--' (the old regexes accepted it)
        ("org/name.", False),  # nor may a name end in '.'
        ("a/b/c", False),
        ("./models/local", False),
        ("x" * 97, False),  # at most 96 characters
    ],
)
def test_one_hub_id_rule_for_sources_and_cards(name: str, expected: bool) -> None:
    assert source_is_hub_id(name) is expected
    assert is_hub_id(name) is expected


def test_an_existing_folder_is_no_hub_id_for_the_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpt2").mkdir()
    assert source_is_hub_id("gpt2") and not is_hub_id("gpt2")
