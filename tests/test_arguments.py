"""Unknown keyword arguments of every builder method and YAML section fail at once, with the closest name."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.errors import ConfigError, DataSourceError, RecipeError
from trl_sft_kit.peft_fields import _SNAPSHOT, lora_config_fields

TYPOS: list[tuple[Callable[[], Any], str]] = [
    (lambda: SFTRecipe().lora(rr=8), "'r'"),
    (lambda: SFTRecipe().lora(use_dorra=True), "'use_dora'"),
    (lambda: SFTRecipe().dataset("a.jsonl", fromat="alpaca"), "'format'"),
    (lambda: SFTRecipe().mix("a.jsonl", wieght=0.5), "'weight'"),
    (lambda: SFTRecipe().quantize(quant_typ="nf4"), "'quant_type'"),
    (lambda: SFTRecipe().loss(turn="last"), "'turns'"),
    (lambda: SFTRecipe().model("m", dtpye="float32"), "'dtype'"),
    (lambda: SFTRecipe().packing("ffd", overflw="split"), "'overflow'"),
    (lambda: SFTRecipe().tokens(eso="x"), "'eos'"),
    (lambda: SFTRecipe().neftune(alhpa=5.0), "'alpha'"),
    (lambda: SFTRecipe().cache(enable=True), "'enabled'"),
    (lambda: SFTRecipe().liger(enable=True), "'enabled'"),
    (lambda: SFTRecipe().chat_template(name_or_pth="x"), "'name_or_path'"),
]


@pytest.mark.parametrize(("call", "suggestion"), TYPOS)
def test_a_misspelt_keyword_is_a_recipe_error_with_the_closest_name(
    call: Callable[[], Any], suggestion: str
) -> None:
    with pytest.raises(RecipeError, match=f"Did you mean {suggestion}"):
        call()


def test_too_many_positional_arguments_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"loss\(\): too many positional arguments"):
        SFTRecipe().loss("all", "last")  # type: ignore[misc]


def test_builder_methods_keep_their_signature_and_docstring() -> None:
    import inspect

    assert "format" in inspect.signature(SFTRecipe.dataset).parameters
    assert (SFTRecipe.lora.__doc__ or "").startswith("Return a new recipe")


@pytest.mark.parametrize(
    ("config", "key", "suggestion"),
    [
        ({"lora": {"alhpa": 8}}, "lora.alhpa", "'alpha'"),
        ({"lora": {"rr": 2}}, "lora.rr", "'r'"),
        ({"dataset": {"source": "a.jsonl", "fromat": "alpaca"}}, "dataset.fromat", "'format'"),
        ({"quantization": {"mode": "4bit", "quant_typ": "nf4"}}, "quantization.quant_typ", "'quant_type'"),
        ({"loss": {"mode": "assistant_only", "turn": "last"}}, "loss.turn", "'turns'"),
        ({"packing": {"strategy": "ffd", "overflw": "split"}}, "packing.overflw", "'overflow'"),
    ],
)
def test_a_misspelt_yaml_key_is_a_config_error_naming_it(
    config: dict[str, Any], key: str, suggestion: str
) -> None:
    with pytest.raises(ConfigError, match=f"Did you mean {suggestion}") as caught:
        SFTRecipe.from_dict(config)
    assert caught.value.key == key


def test_set_override_typo_in_a_section_is_a_config_error() -> None:
    from trl_sft_kit.cli import apply_overrides

    data = apply_overrides({"lora": {"r": 8}}, [("lora.rr", 2)])
    with pytest.raises(ConfigError, match="Did you mean 'r'"):
        SFTRecipe.from_dict(data)


def test_lora_options_are_checked_without_importing_peft() -> None:
    code = (
        "import sys\nfrom trl_sft_kit import SFTRecipe\nSFTRecipe().lora(use_dora=True)\n"
        "try:\n    SFTRecipe().lora(use_dorra=True)\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "print(sorted(m for m in ('peft', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["RecipeError", "[]"]


def test_lora_field_snapshot_matches_the_installed_peft() -> None:
    pytest.importorskip("peft")
    code = (
        "import dataclasses, json, peft\n"
        "print(json.dumps(sorted(f.name for f in dataclasses.fields(peft.LoraConfig) if f.init)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    live = json.loads(out.strip().splitlines()[-1])
    assert sorted(_SNAPSHOT) == live, "update trl_sft_kit/peft_fields.py's _SNAPSHOT to the installed peft"
    assert lora_config_fields() == _SNAPSHOT


# ------------------------------------------------------------------------------------------ validate()


def test_validate_refuses_a_dataset_path_that_does_not_exist(tmp_path: Any) -> None:
    missing = tmp_path / "chats.jsonl"
    with pytest.raises(DataSourceError, match="does not exist") as caught:
        SFTRecipe().dataset(missing).validate()
    assert str(missing) in str(caught.value) and caught.value.path == str(missing)
    with pytest.raises(RecipeError, match="does not exist"):  # with other problems: one RecipeError
        SFTRecipe().dataset(missing).quantize("4bit").validate()
    with pytest.raises(DataSourceError, match="evaluation dataset path"):
        SFTRecipe().dataset([{"text": "a"}], eval=str(tmp_path / "eval.jsonl")).validate()
    SFTRecipe().dataset(missing).validate(sources=False)


def test_validate_refuses_an_uncached_hub_id_only_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = SFTRecipe().dataset("someone/some-data")
    with pytest.raises(DataSourceError, match="not in the local hub cache while offline"):
        recipe.validate()
    (tmp_path / "hub" / "datasets--someone--some-data").mkdir(parents=True)
    assert recipe.validate() is recipe
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    assert SFTRecipe().dataset("someone/other-data").validate()


def test_validate_lists_every_problem_numbered(tmp_path: Any) -> None:
    recipe = (
        SFTRecipe().dataset(tmp_path / "x.jsonl").quantize("8bit").packing("ffd").training(max_length=None)
    )
    with pytest.raises(RecipeError) as caught:
        recipe.validate()
    assert len(caught.value.problems) == 3
    text = str(caught.value)
    assert text.startswith("the recipe cannot work (3 problems):\n  1. ")
    assert "\n  2. " in text and "\n  3. " in text


def test_from_yaml_names_every_problem_in_one_error(tmp_path: Any) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "packing: fdd\nloss: assistant-only\nmax_steps: one\nlora: {alhpa: 8}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        SFTRecipe.from_yaml(path)
    text = str(caught.value)
    assert len(caught.value.problems) == 4
    for needle in ("'fdd'", "'assistant-only'", "'max_steps'", "Did you mean 'alpha'"):
        assert needle in text
    assert str(path) in text and "\n  4. " in text


# ------------------------------------------------------------------------------------------ YAML paths


def test_relative_paths_in_a_yaml_file_are_read_from_its_folder(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "chat.jsonl").write_text('{"text": "a"}\n', encoding="utf-8")
    (project / "template.jinja").write_text("{{ messages }}", encoding="utf-8")
    (project / "recipe.yaml").write_text(
        "model: {source: Qwen/Qwen2.5-0.5B}\ndataset: data/chat.jsonl\nchat_template: template.jinja\n"
        "training: {output_dir: out}\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = SFTRecipe.from_yaml(project / "recipe.yaml")
    assert recipe.model_spec is not None and recipe.model_spec.source == "Qwen/Qwen2.5-0.5B"  # a hub id stays
    assert recipe.dataset_spec is not None
    assert Path(recipe.dataset_spec.source).resolve() == project / "data" / "chat.jsonl"
    assert Path(str(recipe.tokens_spec.chat_template)).resolve() == project / "template.jinja"
    assert Path(recipe.training_fields["output_dir"]).resolve() == project / "out"
    recipe.validate()
    # written elsewhere, the file still names the same files (paths relative to its own folder)
    saved = tmp_path / "runs" / "r1" / "recipe.yaml"
    saved.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    SFTRecipe().dataset("project/data/chat.jsonl").training(output_dir="runs/r1").to_yaml(saved)
    text = saved.read_text(encoding="utf-8")
    assert "source: ../../project/data/chat.jsonl" in text and "output_dir: ." in text
    monkeypatch.chdir(project)
    again = SFTRecipe.from_yaml(saved)
    assert again.dataset_spec is not None
    assert Path(again.dataset_spec.source).resolve() == project / "data" / "chat.jsonl"
    assert SFTRecipe.from_yaml(saved) == again


# ------------------------------------------------------------------------------------------ explain()


def test_explain_shows_each_sources_format_and_the_loss_in_words(tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
        + "\n",
        encoding="utf-8",
    )
    recipe = (
        SFTRecipe()
        .dataset(chat)
        .mix([{"instruction": "q", "output": "a"}], weight=0.5)
        .loss("assistant_only")
        .packing("ffd")
        .training(max_length=256)
    )
    text = recipe.explain()
    assert "format 'messages'" in text and "loss on: assistant turns" in text
    assert "format 'alpaca'" in text and "loss on: the completion" in text
    assert "rows of at most 256 tokens" in text
    assert "dataset_text_field" not in text and "DatasetSpec(" not in text
