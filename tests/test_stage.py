"""The older stage's API: ``TRLSFTConfig`` checks like a recipe; ``TRLSFTStage`` trains, and stages chain."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from trl_sft_kit import ConfigError, RecipeError, SFTRecipe
from trl_sft_kit.stage import StageResult, TRLSFTConfig, TRLSFTStage
from trl_sft_kit.testing import tiny_model, tiny_tokenizer

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"
INSTRUCTIONS = REPO / "examples" / "data" / "instruction_sample_data.jsonl"


@pytest.fixture()
def loaded() -> tuple[Any, Any]:
    """A fresh tiny model and its tokenizer, loaded in memory as a pipeline hands them to a stage."""
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer


def _quick(tmp_path: Path, name: str, **settings: Any) -> TRLSFTConfig:
    """A stage config that trains two short steps."""
    return TRLSFTConfig(
        stage_name=name,
        output_dir=str(tmp_path / name),
        dataset_name_or_path=str(settings.pop("data", CHAT)),
        max_seq_length=128,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        max_steps=2,
        save_strategy="no",
        **settings,
    )


def _weights(model: Any) -> dict[str, Any]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _changed(before: dict[str, Any], model: Any) -> bool:
    import torch

    after = model.state_dict()
    return any(not torch.equal(value, after[name]) for name, value in before.items())


# ------------------------------------------------------------------------------------------ training


def test_the_notes_programmatic_example_runs_unchanged(
    loaded: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The design note's example, word for word except the dataset path (outputs go under tmp_path)."""
    import torch
    from peft import PeftModel

    model, tokenizer = loaded
    before = _weights(model)
    monkeypatch.chdir(tmp_path)

    from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

    config = TRLSFTConfig(
        stage_name="trl_sft",
        output_dir="./outputs/trl_sft",
        dataset_name_or_path=str(CHAT),
        packing=True,
        neftune_noise_alpha=5.0,
    )

    stage = TRLSFTStage(config)
    result = stage.execute(model, tokenizer)

    assert isinstance(result, StageResult) and result.stage_name == "trl_sft" == stage.stage_name
    assert result.success and result.output_dir == Path("./outputs/trl_sft")
    assert math.isfinite(result.metrics["train_loss"]) and result.metrics["epoch"] == 3  # the note's 3 epochs
    assert (tmp_path / "outputs" / "trl_sft" / "adapter_model.safetensors").is_file()
    assert result.adapter_path == result.output_dir and result.model_path is None
    assert (result.tokenizer_path / "tokenizer_config.json").is_file()
    assert result.train_result.recipe == config.to_recipe(model, tokenizer)

    # the model passed in was trained in place, and its adapter merged into its weights
    assert result.model is model and result.merged and not isinstance(model, PeftModel)
    assert not any("lora_" in name for name, _ in model.named_modules())
    assert _changed(before, model)
    assert not model.training and model.config.use_cache and not model.is_activation_checkpointing
    assert result.tokenizer is not tokenizer and result.tokenizer.chat_template == tokenizer.chat_template

    # the merged weights are the base plus the saved adapter
    fresh = tiny_model(tiny_tokenizer())
    with_adapter = PeftModel.from_pretrained(fresh, tmp_path / "outputs" / "trl_sft").eval().to(model.device)
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]], device=model.device)
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, with_adapter(input_ids=ids).logits, atol=1e-4)


def test_a_second_stage_trains_the_model_the_first_returned(loaded: tuple[Any, Any], tmp_path: Path) -> None:
    """SFT then another adapter stage: TRL accepts the merged model with a new LoRA config."""
    model, tokenizer = loaded
    first = TRLSFTStage(_quick(tmp_path, "sft"))
    one = first.execute(model, tokenizer)
    after_one = _weights(one.model)

    second = TRLSFTStage(_quick(tmp_path, "sft_more", data=INSTRUCTIONS, lora_r=4))
    two = second.execute(one.model, one.tokenizer, previous_result=one)

    assert two.model is one.model is model and two.merged
    assert two.train_result.global_step == 2 and math.isfinite(two.metrics["train_loss"])
    assert _changed(after_one, two.model)  # the second stage really trained the first one's model
    assert (tmp_path / "sft" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "sft_more" / "adapter_model.safetensors").is_file()


def test_without_merging_the_adapter_trains_on_and_a_new_one_is_refused(
    loaded: tuple[Any, Any], tmp_path: Path
) -> None:
    from peft import PeftModel

    model, tokenizer = loaded
    kept = TRLSFTStage(_quick(tmp_path, "kept", merge_adapter=False)).execute(model, tokenizer)
    assert isinstance(kept.model, PeftModel) and not kept.merged and not kept.model.training

    stage = TRLSFTStage(_quick(tmp_path, "new_adapter"))
    with pytest.raises(ConfigError, match=r"merge_and_unload\(\)") as caught:
        stage.execute(kept.model, kept.tokenizer)
    assert caught.value.key == "use_lora"
    assert not (tmp_path / "new_adapter").exists()  # refused before anything ran

    adapter = {k: v for k, v in _weights(kept.model).items() if "lora_" in k}
    same = TRLSFTStage(_quick(tmp_path, "same_adapter", use_lora=False)).execute(kept.model, kept.tokenizer)
    assert same.train_result.global_step == 2 and same.adapter_path is not None
    assert same.merged and same.model is model  # the same adapter, trained further, then merged
    assert adapter and not any("lora_" in name for name in same.model.state_dict())


def test_full_fine_tune_returns_the_model_and_its_folder(loaded: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = loaded
    stage = TRLSFTStage(_quick(tmp_path, "full", use_lora=False))
    model, tokenizer = stage.prepare_model_and_tokenizer(model, tokenizer)
    result = stage.execute(model, tokenizer)
    assert result.model is model and not result.merged
    assert result.adapter_path is None and result.model_path == tmp_path / "full"
    assert (tmp_path / "full" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------ config


def test_defaults_are_the_older_stages(tmp_path: Path) -> None:
    config = TRLSFTConfig(dataset_name_or_path=str(CHAT))
    assert (config.stage_name, config.output_dir) == ("trl_sft", "outputs/trl_sft")
    assert (config.max_seq_length, config.num_train_epochs, config.per_device_train_batch_size) == (
        2048,
        3,
        4,
    )
    assert (config.use_lora, config.lora_r, config.lora_alpha, config.lora_dropout) == (True, 16, 32, 0.1)
    assert (config.use_4bit, config.use_8bit) == (False, False)
    note_table = {
        "packing": False,
        "packing_strategy": "ffd",
        "completion_only_loss": None,
        "assistant_only_loss": None,  # unset: the kit's auto; False said outright keeps TRL's default
        "neftune_noise_alpha": None,
        "use_liger_kernel": False,
        "dataset_text_field": "text",
        "chat_template_path": None,
        "eos_token": None,
        "pad_token": None,
    }
    assert {key: getattr(config, key) for key in note_table} == note_table
    assert config.to_recipe() == (
        SFTRecipe()
        .dataset(str(CHAT))
        .lora(r=16, alpha=32, dropout=0.1)
        .training(
            output_dir="outputs/trl_sft",
            max_length=2048,
            num_train_epochs=3,
            per_device_train_batch_size=4,
            learning_rate=2e-4,
        )
    )
    assert repr(config) == f"TRLSFTConfig(stage_name='trl_sft', dataset_name_or_path={str(CHAT)!r})"


def test_the_notes_yaml_configs_map_as_the_kit_maps_them(tmp_path: Path) -> None:
    basic = {
        "dataset_name_or_path": "path/to/dataset.jsonl",
        "max_seq_length": 2048,
        "num_train_epochs": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": "5e-5",  # YAML 1.1 reads 5e-5 as text
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.1,
        "packing": True,
        "completion_only_loss": None,
        "assistant_only_loss": False,
        "neftune_noise_alpha": 5.0,
    }
    chat = {
        "dataset_name_or_path": "examples/chat_sample_data.jsonl",
        "dataset_text_field": "messages",
        "assistant_only_loss": True,
        "packing": False,
    }
    for flat in (basic, chat):
        config = TRLSFTConfig(stage_name="trl_sft", **flat)
        assert config.to_recipe() == SFTRecipe.from_dict(config.to_dict())
    recipe = TRLSFTConfig(**basic).to_recipe()
    assert recipe.training_fields["learning_rate"] == pytest.approx(5e-5)
    assert recipe.packing_spec is not None and recipe.packing_spec.strategy == "ffd"
    assert recipe.neftune_spec is not None and recipe.neftune_spec.alpha == 5.0
    chat_recipe = TRLSFTConfig(**chat).to_recipe()
    assert chat_recipe.loss_spec.mode == "assistant_only" and chat_recipe.packing_spec is None
    assert chat_recipe.dataset_spec is not None and chat_recipe.dataset_spec.text_field == "messages"


BAD = {
    "unknown packing strategy": {"packing": True, "packing_strategy": "tetris"},
    "neftune zero": {"neftune_noise_alpha": 0},
    "neftune negative": {"neftune_noise_alpha": -1.5},
    "quantization without lora": {"use_4bit": True, "use_lora": False},
    "4 and 8 bit": {"use_4bit": True, "use_8bit": True},
    "two loss modes": {"completion_only_loss": True, "assistant_only_loss": True},
    "lora rank": {"lora_r": 0},
    "lora dropout": {"lora_dropout": 1.5},
    "typo": {"max_stpes": 3},
    "learning rate text": {"learning_rate": "fast"},
    "packing without length": {"packing": True, "max_seq_length": None},
    "assistant loss on text": {"dataset_name_or_path": "notes.txt", "assistant_only_loss": True},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_config_raises_the_recipes_own_error(name: str) -> None:
    flat = {"stage_name": "trl_sft", "dataset_name_or_path": "chats.jsonl", **BAD[name]}
    defaults = {
        field.name: field.default
        for field in attrs.fields(TRLSFTConfig)
        if field.name not in ("merge_adapter", "extra")
    }
    with pytest.raises(RecipeError) as from_recipe:  # the same flat keys, read by the kit's YAML mapping
        SFTRecipe.from_dict({**defaults, **flat}).validate(sources=False)
    with pytest.raises(RecipeError) as from_config:
        TRLSFTConfig(**flat)
    assert type(from_config.value) is type(from_recipe.value)
    assert str(from_config.value) == str(from_recipe.value)


def test_a_missing_dataset_is_named() -> None:
    with pytest.raises(ConfigError, match=r"dataset_name_or_path is required") as caught:
        TRLSFTConfig(stage_name="trl_sft", output_dir="out")
    assert caught.value.key == "dataset_name_or_path"


def test_other_sftconfig_fields_are_accepted_as_keywords_and_kept_in_extra() -> None:
    config = TRLSFTConfig(
        dataset_name_or_path="chats.jsonl", gradient_accumulation_steps=4, warmup_steps=0.1, epochs=2
    )
    assert dict(config.extra) == {"gradient_accumulation_steps": 4, "warmup_steps": 0.1}
    assert config.num_train_epochs == 2  # an alias of a field declared here sets that field
    fields = config.to_recipe().training_fields
    assert fields["gradient_accumulation_steps"] == 4 and fields["warmup_steps"] == 0.1
    assert TRLSFTConfig(dataset_name_or_path="chats.jsonl", max_length=256).max_seq_length == 256
    with pytest.raises(ConfigError, match=r"'epochs' and 'num_train_epochs' set the same field"):
        TRLSFTConfig(dataset_name_or_path="chats.jsonl", num_train_epochs=1, epochs=2)
    with pytest.raises(ConfigError, match=r"'lora' is a section of the kit's own config layout"):
        TRLSFTConfig(dataset_name_or_path="chats.jsonl", lora={"r": 4})
    with pytest.raises(ConfigError, match=r"'lora_r' is a field of TRLSFTConfig"):
        TRLSFTConfig(dataset_name_or_path="chats.jsonl", extra={"lora_r": 4})


def test_the_config_is_a_frozen_value() -> None:
    config = TRLSFTConfig(dataset_name_or_path="chats.jsonl", lora_target_modules=["q_proj", "v_proj"])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.lora_r = 8  # type: ignore[misc]
    longer = attrs.evolve(config, max_steps=10, lora_r=8)
    assert longer.extra["max_steps"] == 10 and longer.lora_r == 8 and config.lora_r == 16
    assert config == TRLSFTConfig(
        dataset_name_or_path="chats.jsonl", lora_target_modules=("q_proj", "v_proj")
    )
    assert hash(longer) == hash(attrs.evolve(longer))
    with pytest.raises(RecipeError, match=r"NEFTune|alpha"):
        attrs.evolve(config, neftune_noise_alpha=-1.0)  # a copy is checked again
    with pytest.raises(TypeError, match=r"TRLSFTConfig"):
        TRLSFTStage({"dataset_name_or_path": "chats.jsonl"})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the model


def test_quantization_must_match_the_model_handed_over(
    loaded: tuple[Any, Any], tmp_path: Path, tiny_model_dir: Path
) -> None:
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    model, tokenizer = loaded
    before = _weights(model)
    stage = TRLSFTStage(_quick(tmp_path, "qlora", use_4bit=True))
    with pytest.raises(
        ConfigError, match=r"use_4bit=True, but the model given to the stage is already loaded"
    ):
        stage.execute(model, tokenizer)
    assert not (tmp_path / "qlora").exists() and not _changed(before, model)

    quantized = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, quantization_config=BitsAndBytesConfig(load_in_4bit=True)
    )
    recipe = _quick(tmp_path, "qlora", use_4bit=True).to_recipe(quantized, tokenizer)
    assert recipe.quantization_spec is None and recipe.lora_spec is not None  # it is loaded quantized already
    with pytest.raises(ConfigError, match=r"loaded in 4-bit; set use_4bit=True"):
        _quick(tmp_path, "q8", use_8bit=True).to_recipe(quantized, tokenizer)
    with pytest.raises(ConfigError, match=r"only an adapter can be trained: set use_lora=True"):
        _quick(tmp_path, "full", use_lora=False).to_recipe(quantized, tokenizer)
    stub = SimpleNamespace(is_loaded_in_8bit=True, config=SimpleNamespace())
    assert _quick(tmp_path, "q8", use_8bit=True).to_recipe(stub, tokenizer).quantization_spec is None


def test_a_model_path_is_accepted_too(tmp_path: Path, tiny_model_dir: Path) -> None:
    recipe = _quick(tmp_path, "from_path").to_recipe(tiny_model_dir)
    assert recipe.model_spec is not None and recipe.model_spec.source == str(tiny_model_dir)
    assert not recipe.model_spec.is_loaded
