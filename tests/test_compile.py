"""compile(): a recipe becomes a real SFTConfig and a ready SFTTrainer, with nothing mocked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import BackendError, DatasetError, RecipeError, SFTRecipe
from trl_sft_kit.testing import tiny_model, tiny_tokenizer

CHAT = Path(__file__).resolve().parent.parent / "examples" / "data" / "chat_sample_data.jsonl"


def _recipe(model_dir: Path, fast: dict[str, Any]) -> SFTRecipe:
    return SFTRecipe().model(model_dir).dataset(CHAT).training(**fast)


def test_config_fields_match_the_recipe(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    from trl import SFTConfig

    recipe = (
        _recipe(tiny_model_dir, fast_training)
        .packing("bfd_split")
        .neftune(3.5)
        .training(epochs=2, lr=3e-4, batch_size=4, max_seq_length=96, weight_decay=0.01, warmup_steps=2)
        .tokens(eos="<|im_end|>")
    )
    compiled = recipe.compile()
    config = compiled.config
    assert type(config) is SFTConfig
    assert config.num_train_epochs == 2
    assert config.learning_rate == pytest.approx(3e-4)
    assert config.per_device_train_batch_size == 4
    assert config.max_length == 96
    assert config.weight_decay == pytest.approx(0.01)
    assert config.warmup_steps == 2
    assert config.output_dir == fast_training["output_dir"]
    assert config.packing is True and config.packing_strategy == "bfd_split"
    assert config.neftune_noise_alpha == pytest.approx(3.5)
    assert config.eos_token == "<|im_end|>"
    assert config.bf16 is False  # no GPU here: TRL's default bf16=True would refuse to run
    assert config.completion_only_loss is None and config.assistant_only_loss is False  # the kit masks
    assert compiled.trainer.args is config
    assert compiled.recipe is recipe
    assert compiled.report.format == "messages" and compiled.report.rows_kept == 64


@pytest.mark.parametrize("mode", ["auto", "completion_only", "all"])
def test_loss_modes_set_the_labels_on_prompt_completion_data(
    tiny_model_dir: Path, fast_training: dict[str, Any], sample_file: Any, mode: str
) -> None:
    recipe = (
        SFTRecipe().model(tiny_model_dir).dataset(sample_file("prompt_completion")).training(**fast_training)
    )
    compiled = recipe.loss(mode).compile()
    tokenizer = compiled.trainer.processing_class
    rows = compiled.trainer.train_dataset
    source = [json.loads(line) for line in Path(compiled.report.source).read_text().splitlines()]
    assert len(rows) == len(source)
    for row, raw in zip(rows, source, strict=True):
        trained = [label for label in row["labels"] if label != -100]
        if mode == "all":
            assert row["labels"] == row["input_ids"]
        else:
            assert row["labels"][0] == -100
            assert tokenizer.decode(trained) == raw["completion"] + tokenizer.eos_token
    # TRL's own preparation is skipped: the kit's labels are what the trainer uses
    assert compiled.config.dataset_kwargs["skip_prepare_dataset"] is True
    assert compiled.tokenization.loss == ("all" if mode == "all" else "completion_only")


def test_assistant_only_labels_reach_the_trainer(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    compiled = _recipe(tiny_model_dir, fast_training).loss("assistant_only").compile()
    tokenizer = compiled.trainer.processing_class
    source = [json.loads(line) for line in CHAT.read_text().splitlines()]
    expected = [
        "".join(m["content"] + "<|im_end|>\n" for m in row["messages"] if m["role"] == "assistant")
        for row in source
    ]
    for row, text in zip(compiled.trainer.train_dataset, expected, strict=True):
        assert tokenizer.decode([t for t in row["labels"] if t != -100]) == text
    batch = next(iter(compiled.trainer.get_train_dataloader()))
    for labels in batch["labels"]:
        kept = labels[labels != -100]
        assert len(kept) > 0
        assert "<|im_start|>user" not in tokenizer.decode(kept)
        assert "<|im_start|>assistant" not in tokenizer.decode(kept)
    # the canonical rows went once tokenized (the reports stay); training needs the tokens only
    assert compiled.data is not None and compiled.data.rows == []
    assert compiled.report.rows_kept == len(source) == len(compiled.trainer.train_dataset)


@pytest.mark.parametrize(
    ("strategy", "config_strategy", "padding_free"),
    [
        ("ffd", "ffd", True),
        ("bfd", "bfd", True),
        ("bfd_split", "bfd_split", True),
        ("wrapped", "wrapped", False),
    ],
)
def test_packing_strategies_pack_the_data(
    tiny_model_dir: Path,
    fast_training: dict[str, Any],
    strategy: str,
    config_strategy: str,
    padding_free: bool,
) -> None:
    compiled = _recipe(tiny_model_dir, fast_training).packing(strategy).compile()
    assert compiled.config.packing is True
    assert compiled.config.packing_strategy == config_strategy
    assert compiled.config.padding_free is padding_free
    assert compiled.packing is not None and compiled.packing.strategy == strategy
    assert compiled.packing.crosses_boundaries is (strategy == "wrapped")
    assert len(compiled.trainer.train_dataset) == compiled.packing.rows < 64
    if padding_free:
        assert "seq_lengths" in compiled.trainer.train_dataset.column_names
        assert compiled.trainer.data_collator.padding_free is True


def test_packing_split_keeps_every_trained_token(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    compiled = (
        _recipe(tiny_model_dir, {**fast_training, "max_length": 32})
        .packing("ffd", overflow="split")
        .compile()
    )
    assert compiled.packing is not None
    assert compiled.packing.tokens_truncated == 0
    labels = compiled.trainer.train_dataset["labels"]
    assert sum(sum(label != -100 for label in row) for row in labels) == compiled.tokenization.trained_tokens
    # the pieces that carry no loss (prompt-only pieces) are dropped and counted, never trained on
    assert compiled.packing.sequences_empty > 0 and all(any(label != -100 for label in row) for row in labels)
    # truncated instead, no row keeps a token carrying loss: refused, where it used to train on nothing
    with pytest.raises(DatasetError, match="no sequence is left to pack"):
        _recipe(tiny_model_dir, {**fast_training, "max_length": 32}).packing("ffd").compile()
    truncated = _recipe(tiny_model_dir, {**fast_training, "max_length": 80}).packing("ffd").compile()
    assert truncated.packing is not None and truncated.packing.tokens_truncated > 0


def test_truncation_is_counted(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    compiled = _recipe(tiny_model_dir, {**fast_training, "max_length": 40}).compile()
    report = compiled.tokenization
    assert report.rows_truncated > 0 and report.tokens_truncated > 0
    assert all(len(row["input_ids"]) <= 40 for row in compiled.trainer.train_dataset)
    assert report.rows_out + report.rows_all_trained_tokens_cut + report.rows_without_trained_tokens == 64


def test_lora_gives_a_peft_model_with_the_recipe_settings(
    tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    from peft import PeftModel

    compiled = (
        _recipe(tiny_model_dir, fast_training)
        .lora(r=4, alpha=8, dropout=0.1, target_modules=["q_proj"])
        .compile()
    )
    model = compiled.trainer.model
    assert isinstance(model, PeftModel)
    lora = model.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (4, 8, 0.1)
    assert set(lora.target_modules) == {"q_proj"}
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name and "q_proj" in name for name in trainable)


def test_without_lora_the_whole_model_trains(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    from peft import PeftModel

    model = _recipe(tiny_model_dir, fast_training).compile().trainer.model
    assert not isinstance(model, PeftModel)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("mode", "layer"), [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_quantize_loads_bitsandbytes_layers(
    tiny_model_dir: Path, fast_training: dict[str, Any], mode: str, layer: str
) -> None:
    compiled = _recipe(tiny_model_dir, fast_training).lora(r=4).quantize(mode).compile()
    base = compiled.trainer.model.get_base_model()
    kinds = {type(module).__name__ for module in base.modules()}
    assert layer in kinds
    assert getattr(base, f"is_loaded_in_{mode}") is True


def test_loaded_model_and_tokenizer_are_used_and_tokenizer_left_alone(fast_training: dict[str, Any]) -> None:
    tokenizer = tiny_tokenizer("qwen2_5")
    model = tiny_model(tokenizer)
    before = (tokenizer.pad_token, tokenizer.chat_template, len(tokenizer))
    compiled = (
        SFTRecipe()
        .model(model, tokenizer=tokenizer)
        .dataset(CHAT)
        .chat_template("phi3")
        .training(**fast_training)
    ).compile()
    assert compiled.trainer.model is model
    assert (tokenizer.pad_token, tokenizer.chat_template, len(tokenizer)) == before
    assert compiled.trainer.processing_class is not tokenizer
    assert "<|end|>" in compiled.trainer.processing_class.chat_template


def test_template_that_cannot_render_with_the_tokenizer_is_a_recipe_error(
    fast_training: dict[str, Any],
) -> None:
    tokenizer = tiny_tokenizer("qwen2_5")  # defines no bos token, which llama3's template prints
    model = tiny_model(tokenizer)
    recipe = SFTRecipe().model(model, tokenizer=tokenizer).dataset(CHAT).chat_template("llama3")
    with pytest.raises(RecipeError, match=r"'llama3' cannot render.*bos_token"):
        recipe.training(**fast_training).compile()


def test_chat_template_adds_missing_tokens_and_resizes(
    tiny_model_dir_no_template: Path, fast_training: dict[str, Any]
) -> None:
    from transformers import AutoTokenizer

    before = len(AutoTokenizer.from_pretrained(tiny_model_dir_no_template))
    compiled = (
        SFTRecipe()
        .model(tiny_model_dir_no_template)
        .dataset(CHAT)
        .chat_template("phi3")
        .training(**fast_training)
        .compile()
    )
    tokenizer = compiled.trainer.processing_class
    assert len(tokenizer) > before
    for token in ("<|user|>", "<|assistant|>", "<|end|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert compiled.trainer.model.get_input_embeddings().weight.shape[0] == len(tokenizer)


def test_chat_template_from_jinja_file(
    tmp_path: Path, tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    template = tmp_path / "mine.jinja"
    template.write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        encoding="utf-8",
    )
    compiled = _recipe(tiny_model_dir, fast_training).chat_template(template).compile()
    assert compiled.trainer.processing_class.chat_template == template.read_text(encoding="utf-8")


def test_chat_data_on_a_tokenizer_without_template_is_refused_before_the_model_loads(
    tiny_model_dir_no_template: Path, fast_training: dict[str, Any]
) -> None:
    with pytest.raises(RecipeError, match=r"no chat template.*chat_template\("):
        SFTRecipe().model(tiny_model_dir_no_template).dataset(CHAT).training(**fast_training).compile()


def test_completion_only_on_text_data_found_by_detection(
    tiny_model_dir: Path, fast_training: dict[str, Any], sample_file: Any
) -> None:
    recipe = SFTRecipe().model(tiny_model_dir).dataset(sample_file("text")).loss("completion_only")
    with pytest.raises(RecipeError, match="completion_only"):
        recipe.training(**fast_training).compile()


def test_unknown_tokens_and_templates_are_refused(
    tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    with pytest.raises(RecipeError, match="not in the tokenizer's vocabulary"):
        _recipe(tiny_model_dir, fast_training).tokens(pad="<nope>").compile()
    with pytest.raises(RecipeError, match="bundled with TRL"):
        _recipe(tiny_model_dir, fast_training).chat_template("no_such_template").compile()


def test_pad_token_is_set_on_the_trainer_tokenizer(
    tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    compiled = _recipe(tiny_model_dir, fast_training).tokens(pad="<|endoftext|>").compile()
    assert compiled.trainer.processing_class.pad_token == "<|endoftext|>"
    assert compiled.trainer.model.config.pad_token_id == compiled.trainer.processing_class.pad_token_id


def test_model_from_environment(
    tiny_model_dir: Path, fast_training: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRL_SFT_KIT_MODEL", str(tiny_model_dir))
    compiled = SFTRecipe().dataset(CHAT).training(**fast_training).compile()
    assert compiled.model_name == str(tiny_model_dir)


def test_default_model_offline_says_what_was_tried(
    fast_training: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRL_SFT_KIT_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError) as caught:
        SFTRecipe().dataset(CHAT).training(**fast_training).compile()
    message = str(caught.value)
    assert "Qwen/Qwen2.5-0.5B-Instruct" in message
    assert "TRL_SFT_KIT_MODEL" in message and ".model(" in message


def test_missing_model_path_is_a_backend_error(fast_training: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        SFTRecipe().model(tmp_path / "nowhere").dataset(CHAT).training(**fast_training).compile()


def test_liger_without_gpu_is_refused_with_the_way_out(
    tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    import torch

    if torch.cuda.is_available():  # pragma: no cover - CI has no GPU
        pytest.skip("this machine has a GPU")
    with pytest.raises((RecipeError, ImportError), match=r"liger"):
        _recipe(tiny_model_dir, fast_training).liger().compile()


def test_sftconfig_kwargs_are_all_real_fields(tiny_model_dir: Path) -> None:
    from trl import SFTConfig

    from trl_sft_kit.compile import config_kwargs

    recipe = (
        SFTRecipe().dataset(CHAT).packing("ffd").neftune(5.0).liger().loss("completion_only").tokens(eos="x")
    )
    names = {field.name for field in dataclasses.fields(SFTConfig)}
    assert set(config_kwargs(recipe, bf16_capable=False, accelerator=False)) <= names


def test_eos_follows_the_chat_templates_end_of_turn(
    tiny_model_dir_no_template: Path, fast_training: dict[str, Any]
) -> None:
    compiled = (
        SFTRecipe()
        .model(tiny_model_dir_no_template)
        .dataset(CHAT)
        .chat_template("phi3")
        .training(**fast_training)
        .compile()
    )
    tokenizer = compiled.trainer.processing_class
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    assert tokenizer.eos_token == "<|end|>"
    assert compiled.trainer.model.config.eos_token_id == end
    eos_ids = compiled.trainer.model.generation_config.eos_token_id
    assert end in (eos_ids if isinstance(eos_ids, list) else [eos_ids])
    # an explicit eos wins
    chosen = (
        SFTRecipe()
        .model(tiny_model_dir_no_template)
        .dataset(CHAT)
        .chat_template("phi3")
        .tokens(eos="<|endoftext|>")
        .training(**fast_training)
        .compile()
    )
    assert chosen.trainer.processing_class.eos_token == "<|endoftext|>"


def test_training_log_starts_with_the_data_and_packing_report(
    tiny_model_dir: Path, fast_training: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    compiled = _recipe(tiny_model_dir, fast_training).packing("ffd").training(max_steps=1).compile()
    assert compiled.packing is not None
    compiled.train()
    logged = capfd.readouterr().err
    assert "[trl_sft_kit] training on:" in logged
    assert compiled.packing.summary() in logged
    assert compiled.tokenization.summary().splitlines()[0] in logged
