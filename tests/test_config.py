"""Tests for recipes to and from dicts and YAML, the legacy SFT-stage keys, and a round-trip property test."""

from __future__ import annotations

import copy
import string
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trl_sft_kit import ConfigError, RecipeError, SFTRecipe
from trl_sft_kit.config import LEGACY_KEYS, dump_yaml, load_yaml
from trl_sft_kit.formats import format_names
from trl_sft_kit.packing import packer_names
from trl_sft_kit.specs import LOSS_MODES, InlineRows, LoraSpec, QuantizationSpec, TokensSpec

REPO = Path(__file__).resolve().parent.parent

ROWS = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "tools": None},
]


def rich() -> SFTRecipe:
    return (
        SFTRecipe()
        .model(
            "Qwen/Qwen2.5-0.5B-Instruct",
            tokenizer="Qwen/Qwen2.5-0.5B",
            dtype="bfloat16",
            attn_implementation="sdpa",
            trust_remote_code=True,
            revision="main",
        )
        .dataset(
            "data/train.jsonl",
            format="alpaca",
            split="validation",
            text_field="body",
            columns={"question": "instruction", "answer": "output"},
            on_bad_rows="skip",
        )
        .lora(
            r=8,
            alpha=16,
            dropout=0.1,
            target_modules=["q_proj", "v_proj"],
            use_dora=True,
            modules_to_save=["lm_head"],
            bias="none",
        )
        .quantize("4bit", quant_type="fp4", double_quant=False, compute_dtype="bfloat16")
        .packing("bfd_split")
        .neftune(5.0)
        .liger()
        .loss("assistant_only")
        .chat_template("qwen2_5")
        .tokens(eos="<|im_end|>", pad="<|endoftext|>")
        .training(
            epochs=2,
            lr=5e-5,
            output_dir="runs/a",
            lr_scheduler_kwargs={"min_lr": 1e-6, "steps": [1, 2]},
            max_length=None,
            bf16=False,
            report_to=["tensorboard"],
        )
    )


# ------------------------------------------------------------------------------------------ round trips


def test_rich_recipe_round_trips_through_dict() -> None:
    recipe = rich()
    data = recipe.to_dict()
    assert SFTRecipe.from_dict(data) == recipe
    assert hash(SFTRecipe.from_dict(data)) == hash(recipe)
    assert data["lora"] == {
        "r": 8,
        "alpha": 16,
        "dropout": 0.1,
        "target_modules": ["q_proj", "v_proj"],
        "options": {"use_dora": True, "modules_to_save": ["lm_head"], "bias": "none"},
    }
    assert data["quantization"] == {
        "mode": "4bit",
        "quant_type": "fp4",
        "double_quant": False,
        "compute_dtype": "bfloat16",
    }
    assert data["training"]["lr_scheduler_kwargs"] == {"min_lr": 1e-6, "steps": [1, 2]}


def test_rich_recipe_round_trips_through_yaml_text() -> None:
    recipe = rich()
    text = recipe.to_yaml()
    assert yaml.safe_load(text) == recipe.to_dict()
    again = SFTRecipe.from_yaml(text)
    assert again == recipe
    assert again.to_yaml() == text


def test_to_dict_is_plain_data() -> None:
    def check(value: Any) -> None:
        assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)

    check(rich().to_dict())
    check(rich().dataset(ROWS).to_dict())


@pytest.mark.parametrize("as_path", [True, False])
def test_to_yaml_writes_a_file_that_from_yaml_reads(tmp_path: Path, as_path: bool) -> None:
    recipe = rich()
    target = tmp_path / "sub dir" / "recipe.yaml"
    target.parent.mkdir()
    text = recipe.to_yaml(target if as_path else str(target))
    assert target.read_text(encoding="utf-8") == text
    assert SFTRecipe.from_yaml(target if as_path else str(target)) == recipe


def test_file_name_with_a_colon_is_read_as_a_file(tmp_path: Path) -> None:
    target = tmp_path / "run:1.yaml"
    SFTRecipe().lora(r=4).to_yaml(target)
    assert SFTRecipe.from_yaml(str(target)) == SFTRecipe().lora(r=4)


def test_inline_rows_round_trip() -> None:
    recipe = SFTRecipe().dataset(ROWS, format="messages").lora()
    data = recipe.to_dict()
    assert data["dataset"] == {"rows": ROWS, "format": "messages"}
    assert SFTRecipe.from_dict(data) == recipe
    assert SFTRecipe.from_yaml(recipe.to_yaml()) == recipe
    loaded = SFTRecipe.from_yaml(recipe.to_yaml()).dataset_spec
    assert loaded is not None and isinstance(loaded.source, InlineRows)
    assert loaded.source.to_list() == ROWS


@pytest.mark.parametrize("text", ["café 日本", "line\x85break", "a\u2028b\u2029c", "\ufeffbom", "tab\there"])
def test_unusual_text_round_trips_through_yaml(text: str) -> None:
    recipe = SFTRecipe().model(f"org/{text}").dataset([{"text": text, text: [text]}]).tokens(eos=text)
    assert SFTRecipe.from_yaml(recipe.to_yaml()) == recipe


def test_non_ascii_text_stays_readable_in_yaml() -> None:
    assert "source: org/café\n" in SFTRecipe().model("org/café").to_yaml()


def test_empty_recipe_is_an_empty_dict() -> None:
    assert SFTRecipe().to_dict() == {}
    assert SFTRecipe.from_dict({}) == SFTRecipe()
    assert SFTRecipe.from_yaml(SFTRecipe().to_yaml()) == SFTRecipe()


def test_only_options_that_are_set_are_written() -> None:
    recipe = SFTRecipe().model("gpt2").dataset("a.jsonl").liger(False).tokens().chat_template(None)
    assert recipe.to_dict() == {"model": {"source": "gpt2"}, "dataset": {"source": "a.jsonl"}}


def test_a_datasets_object_cannot_be_written() -> None:
    import datasets

    table = datasets.Dataset.from_list([{"text": "hello"}])
    recipe = SFTRecipe().dataset(table).lora()
    assert repr(recipe.dataset_spec) == "DatasetSpec(<Dataset>)"
    with pytest.raises(ConfigError) as info:
        recipe.to_dict()
    assert info.value.key == "dataset"
    assert "datasets.Dataset" in str(info.value)
    with pytest.raises(ConfigError):
        recipe.to_yaml()


def test_a_loaded_model_or_tokenizer_cannot_be_written() -> None:
    class LoadedModel:
        pass

    with pytest.raises(ConfigError) as info:
        SFTRecipe().model(LoadedModel(), tokenizer="tok").to_dict()
    assert info.value.key == "model"
    with pytest.raises(ConfigError):
        SFTRecipe().model("gpt2", tokenizer=LoadedModel()).to_yaml()


def test_a_value_yaml_cannot_hold_raises_config_error() -> None:
    recipe = SFTRecipe().training(report_to=object())
    with pytest.raises(ConfigError, match="YAML cannot write"):
        recipe.to_yaml()
    with pytest.raises(ConfigError):
        dump_yaml({"x": object()})


def test_path_valued_training_fields_are_written_as_text(tmp_path: Path) -> None:
    recipe = SFTRecipe().training(output_dir=tmp_path / "out")
    assert recipe.training_fields["output_dir"] == str(tmp_path / "out")
    assert SFTRecipe.from_yaml(recipe.to_yaml()) == recipe


def test_kit_layout_shorthands() -> None:
    recipe = SFTRecipe.from_yaml(
        textwrap.dedent(
            """\
            model: gpt2
            dataset: chats.jsonl
            lora: true
            quantization: 8bit
            packing: wrapped
            neftune: 1e-1
            training: {lr: 1e-4, epochs: 2}
            """
        )
    )
    assert recipe == (
        SFTRecipe()
        .model("gpt2")
        .dataset("chats.jsonl")
        .lora()
        .quantize("8bit")
        .packing("wrapped")
        .neftune(0.1)
        .training(learning_rate=1e-4, num_train_epochs=2)
    )


def test_null_sections_mean_not_set() -> None:
    data = {
        key: None
        for key in (
            "model",
            "dataset",
            "lora",
            "quantization",
            "packing",
            "neftune",
            "liger",
            "loss",
            "chat_template",
            "tokens",
            "training",
        )
    }
    assert SFTRecipe.from_dict(data) == SFTRecipe()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"model": {"dtype": "bfloat16"}}, "model"),
        ({"model": {"source": "gpt2", "flavour": "x"}}, "model.flavour"),
        ({"dataset": {"source": "a.jsonl", "rows": [{"text": "x"}]}}, "dataset"),
        ({"dataset": {"format": "text"}}, "dataset"),
        ({"quantization": {"quant_type": "nf4"}}, "quantization"),
        ({"tokens": {"eos": "a", "bos": "b"}}, "tokens"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"lora": {"dropout": 2}}, "lora.dropout"),
        ({"lora": "yes"}, "lora"),
        ({"loss": "everything"}, "loss"),
        ({"neftune": 0}, "neftune"),
        ({"training": ["seed"]}, "training"),
    ],
)
def test_bad_kit_layout_names_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict(data)
    assert info.value.key == key


def test_from_dict_refuses_non_mappings_and_non_string_keys() -> None:
    with pytest.raises(ConfigError):
        SFTRecipe.from_dict(["lora"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SFTRecipe.from_dict({1: "x"})


# ------------------------------------------------------------------------------------------ legacy configs

# The two YAML examples of the TRL SFT stage's design note, verbatim.
SEED_BASIC = """\
stages:
  - "trl_sft"

stage_configs:
  trl_sft:
    # Standard SFT parameters (all supported)
    dataset_name_or_path: "path/to/dataset.jsonl"
    max_seq_length: 2048
    num_train_epochs: 3
    per_device_train_batch_size: 4
    learning_rate: 5e-5
    
    # LoRA configuration
    lora_r: 16
    lora_alpha: 32
    lora_dropout: 0.1
    
    # TRL-specific enhancements
    packing: true
    completion_only_loss: null  # Auto-detect
    assistant_only_loss: false
    neftune_noise_alpha: 5.0
"""  # noqa: W293 - the blank lines hold spaces in the original

SEED_CHAT = """\
stage_configs:
  trl_sft:
    dataset_name_or_path: "examples/chat_sample_data.jsonl"
    dataset_text_field: "messages"
    assistant_only_loss: true  # Train only on assistant responses
    packing: false  # Typically disabled for chat
"""

SEED_PACKING = """\
packing: true
packing_strategy: "ffd"  # First-fit decreasing
"""


def test_yaml_reads_5e_5_as_a_string() -> None:
    assert yaml.safe_load("learning_rate: 5e-5") == {"learning_rate": "5e-5"}


@pytest.mark.usefixtures("data_folder")
def test_seed_basic_configuration() -> None:
    recipe = SFTRecipe.from_yaml(SEED_BASIC)
    assert recipe.model_spec is None
    dataset = recipe.dataset_spec
    assert dataset is not None
    assert (
        dataset.source,
        dataset.format,
        dataset.split,
        dataset.text_field,
        dataset.columns,
        dataset.on_bad_rows,
    ) == ("path/to/dataset.jsonl", "auto", "train", "text", None, "error")
    assert recipe.lora_spec == LoraSpec(r=16, alpha=32, dropout=0.1, target_modules="all-linear", options={})
    assert recipe.quantization_spec is None
    assert recipe.packing_spec is not None and recipe.packing_spec.strategy == "ffd"
    assert recipe.neftune_spec is not None and recipe.neftune_spec.alpha == 5.0
    assert recipe.liger_enabled is False
    assert recipe.loss_spec.mode == "trl"  # assistant_only_loss: false, said outright: TRL's default
    assert recipe.tokens_spec == TokensSpec()
    assert dict(recipe.training_fields) == {
        "max_length": 2048,
        "num_train_epochs": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 5e-05,
    }
    assert type(recipe.training_fields["learning_rate"]) is float
    assert recipe == (
        SFTRecipe()
        .dataset("path/to/dataset.jsonl")
        .lora(r=16, alpha=32, dropout=0.1)
        .packing("ffd")
        .neftune(5.0)
        .loss("trl")
        .training(max_seq_length=2048, epochs=3, batch_size=4, lr=5e-5)
    )
    recipe.validate()


def test_seed_chat_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = SFTRecipe.from_yaml(SEED_CHAT)
    assert recipe == SFTRecipe().dataset("examples/chat_sample_data.jsonl", text_field="messages").loss(
        "assistant_only"
    )
    assert recipe.packing_spec is None
    assert recipe.lora_spec is None
    assert recipe.training_fields == {}
    monkeypatch.chdir(REPO)
    recipe.validate(sources=False)  # the seed's path predates examples/data/


def test_seed_packing_snippet() -> None:
    assert SFTRecipe.from_yaml(SEED_PACKING) == SFTRecipe().packing("ffd")


def test_seed_programmatic_example_keys() -> None:
    recipe = SFTRecipe.from_dict(
        {
            "stage_name": "trl_sft",
            "output_dir": "./outputs/trl_sft",
            "dataset_name_or_path": "path/to/dataset.jsonl",
            "packing": True,
            "neftune_noise_alpha": 5.0,
        }
    )
    assert recipe == SFTRecipe().dataset("path/to/dataset.jsonl").packing().neftune(5.0).training(
        output_dir="./outputs/trl_sft"
    )


FLAT = {
    "model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct",
    "dataset_name_or_path": "data/chat.jsonl",
    "dataset_text_field": "content",
    "max_seq_length": 1024,
    "num_train_epochs": 2,
    "per_device_train_batch_size": 8,
    "learning_rate": "5e-5",
    "output_dir": "outputs/sft",
    "lora_r": 32,
    "lora_alpha": 64,
    "lora_dropout": 0.05,
    "use_4bit": True,
    "use_8bit": False,
    "packing": True,
    "packing_strategy": "ffd",
    "completion_only_loss": None,
    "assistant_only_loss": True,
    "neftune_noise_alpha": 5.0,
    "use_liger_kernel": True,
    "chat_template_path": "templates/chat.jinja",
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
}

FLAT_EXPECTED = (
    SFTRecipe()
    .model("Qwen/Qwen2.5-0.5B-Instruct")
    .dataset("data/chat.jsonl", text_field="content")
    .lora(r=32, alpha=64, dropout=0.05)
    .quantize("4bit")
    .packing("ffd")
    .neftune(5.0)
    .liger()
    .loss("assistant_only")
    .chat_template("templates/chat.jinja")
    .tokens(eos="<|im_end|>", pad="<|endoftext|>")
    .training(
        max_length=1024,
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=5e-5,
        output_dir="outputs/sft",
    )
)


def test_flat_legacy_config_with_every_key() -> None:
    recipe = SFTRecipe.from_dict(FLAT)
    assert recipe == FLAT_EXPECTED
    assert recipe.model_spec is not None and recipe.model_spec.source == "Qwen/Qwen2.5-0.5B-Instruct"
    assert recipe.dataset_spec is not None and recipe.dataset_spec.text_field == "content"
    assert recipe.quantization_spec == QuantizationSpec(4)
    assert recipe.tokens_spec == TokensSpec("templates/chat.jinja", "<|im_end|>", "<|endoftext|>")
    assert recipe.training_fields["learning_rate"] == 5e-05
    assert type(recipe.training_fields["learning_rate"]) is float
    # the legacy keys that configure options never leak into the SFTConfig fields
    assert not set(recipe.training_fields) & (set(LEGACY_KEYS) - {"max_seq_length"})


def test_flat_legacy_config_from_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths in a file are read from its folder
    path = tmp_path / "sft.yaml"
    text = yaml.safe_dump(FLAT).replace("'5e-5'", "5e-5")
    assert "learning_rate: 5e-5\n" in text
    path.write_text(text, encoding="utf-8")
    assert SFTRecipe.from_yaml(path) == FLAT_EXPECTED


def test_nested_stage_config_equals_flat() -> None:
    nested = {"stages": ["trl_sft"], "stage_configs": {"trl_sft": dict(FLAT)}}
    assert SFTRecipe.from_dict(nested) == FLAT_EXPECTED
    assert SFTRecipe.from_yaml(yaml.safe_dump(nested)) == FLAT_EXPECTED


def test_pipeline_level_keys_apply_to_the_stage() -> None:
    data = {
        "model_name_or_path": "gpt2",
        "output_dir": "outputs/top",
        "stages": ["trl_sft"],
        "stage_configs": {"trl_sft": {"lora_r": 4, "output_dir": "outputs/stage"}, "dpo": {"beta": 0.1}},
    }
    recipe = SFTRecipe.from_dict(data)
    assert recipe == SFTRecipe().model("gpt2").lora(r=4).training(output_dir="outputs/stage")


def test_stage_configs_without_an_sft_stage() -> None:
    with pytest.raises(ConfigError, match="trl_sft") as info:
        SFTRecipe.from_dict({"stage_configs": {"dpo": {"beta": 0.1}}})
    assert info.value.key == "stage_configs"
    with pytest.raises(ConfigError):
        SFTRecipe.from_dict({"stage_configs": ["trl_sft"]})
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict({"stage_configs": {"trl_sft": ["lora_r"]}})
    assert info.value.key == "stage_configs.trl_sft"


@pytest.mark.parametrize(
    ("settings", "strategy"),
    [
        ({"packing": False, "packing_strategy": "wrapped"}, None),
        ({"packing": False, "packing_strategy": "ffd"}, None),
        ({"packing_strategy": "wrapped"}, None),
        ({"packing": True}, "ffd"),
        ({"packing": True, "packing_strategy": None}, "ffd"),
        ({"packing": True, "packing_strategy": "ffd"}, "ffd"),
        ({"packing": True, "packing_strategy": "wrapped"}, "wrapped"),
        ({"packing": "bfd"}, "bfd"),
        ({"packing": None}, None),
    ],
)
def test_legacy_packing(settings: dict[str, Any], strategy: str | None) -> None:
    recipe = SFTRecipe.from_dict(settings)
    assert (recipe.packing_spec.strategy if recipe.packing_spec else None) == strategy


def test_legacy_unknown_packing_strategy() -> None:
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict({"packing": True, "packing_strategy": "fastest"})
    assert info.value.key == "packing_strategy"
    assert "'fastest'" in str(info.value) and "'wrapped'" in str(info.value)


@pytest.mark.parametrize(
    ("settings", "mode"),
    [
        ({"completion_only_loss": None}, "auto"),
        ({"completion_only_loss": True}, "completion_only"),
        ({"completion_only_loss": False}, "all"),
        ({"assistant_only_loss": False}, "trl"),  # said outright: TRL's default, as before auto changed
        ({"assistant_only_loss": False, "completion_only_loss": None}, "trl"),
        ({"assistant_only_loss": False, "completion_only_loss": False}, "all"),
        ({"assistant_only_loss": True}, "assistant_only"),
        ({"assistant_only_loss": True, "completion_only_loss": False}, "assistant_only"),
        ({"assistant_only_loss": None, "completion_only_loss": None}, "auto"),
        ({}, "auto"),
    ],
)
def test_legacy_loss(settings: dict[str, Any], mode: str) -> None:
    assert SFTRecipe.from_dict(settings).loss_spec.mode == mode


def test_legacy_both_loss_flags_conflict() -> None:
    with pytest.raises(ConfigError):
        SFTRecipe.from_dict({"assistant_only_loss": True, "completion_only_loss": True})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"use_4bit": True, "lora_r": 8}, SFTRecipe().quantize("4bit").lora(r=8)),
        ({"use_8bit": True, "use_4bit": False}, SFTRecipe().quantize("8bit")),
        ({"use_4bit": None, "use_8bit": None}, SFTRecipe()),
        ({"use_4bit": False, "bnb_4bit_quant_type": "fp4"}, SFTRecipe()),
        (
            {
                "use_4bit": True,
                "bnb_4bit_quant_type": "fp4",
                "bnb_4bit_compute_dtype": "float16",
                "bnb_4bit_use_double_quant": False,
            },
            SFTRecipe().quantize("4bit", quant_type="fp4", compute_dtype="float16", double_quant=False),
        ),
        ({"use_4bit": True, "use_nested_quant": False}, SFTRecipe().quantize("4bit", double_quant=False)),
    ],
)
def test_legacy_quantization(settings: dict[str, Any], expected: SFTRecipe) -> None:
    assert SFTRecipe.from_dict(settings) == expected


def test_legacy_both_quantization_flags_conflict() -> None:
    with pytest.raises(ConfigError):
        SFTRecipe.from_dict({"use_4bit": True, "use_8bit": True})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"lora_r": 8}, SFTRecipe().lora(r=8)),
        ({"lora_r": None}, SFTRecipe()),
        ({"use_lora": True}, SFTRecipe().lora()),
        ({"use_lora": False, "lora_r": 8}, SFTRecipe()),
        (
            {"lora_target_modules": ["q_proj", "v_proj"]},
            SFTRecipe().lora(target_modules=("q_proj", "v_proj")),
        ),
        (
            {"lora_dropout": "1e-1", "lora_alpha": "16", "lora_r": "4"},
            SFTRecipe().lora(r=4, alpha=16, dropout=0.1),
        ),
        ({"lora": {"r": 8}, "lora_alpha": 8}, SFTRecipe().lora(r=8, alpha=8)),
    ],
)
def test_legacy_lora(settings: dict[str, Any], expected: SFTRecipe) -> None:
    assert SFTRecipe.from_dict(settings) == expected


def test_legacy_null_keys_mean_not_set() -> None:
    keys = (
        "model_name_or_path",
        "dataset_name_or_path",
        "dataset_text_field",
        "neftune_noise_alpha",
        "use_liger_kernel",
        "chat_template_path",
        "eos_token",
        "pad_token",
        "packing_strategy",
    )
    assert SFTRecipe.from_dict(dict.fromkeys(keys)) == SFTRecipe()


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("lora_rr", "lora_r"),
        ("dataset_name_or_pth", "dataset_name_or_path"),
        ("learning_rat", "learning_rate"),
        ("use_4bits", "use_4bit"),
        ("neftune_alpha", "neftune_noise_alpha"),
        ("max_seq_len", "max_seq_length"),
    ],
)
def test_unknown_key_names_the_closest_known_key(key: str, suggestion: str) -> None:
    for data in ({key: 1}, {"stages": ["trl_sft"], "stage_configs": {"trl_sft": {key: 1}}}):
        with pytest.raises(ConfigError) as info:
            SFTRecipe.from_dict(data)
        assert info.value.key == key
        assert repr(key) in str(info.value)
        assert f"Did you mean {suggestion!r}?" in str(info.value)


def test_unknown_field_in_training_section_names_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict({"training": {"num_train_epoch": 1}})
    assert info.value.key == "training.num_train_epoch"
    assert "'num_train_epochs'" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lora_r", "abc"),
        ("lora_r", 2.5),
        ("lora_alpha", "lots"),
        ("lora_dropout", [0.1]),
        ("use_4bit", "maybe"),
        ("use_8bit", 1),
        ("use_lora", "yes"),
        ("learning_rate", "fast"),
        ("num_train_epochs", "three"),
        ("max_seq_length", "long"),
        ("per_device_train_batch_size", True),
        ("neftune_noise_alpha", "lots"),
        ("completion_only_loss", "sometimes"),
        ("assistant_only_loss", "yes"),
        ("use_liger_kernel", "true"),
        ("packing_strategy", 3),
        ("dataset_name_or_path", 3),
        ("model_name_or_path", ["gpt2"]),
        ("dataset_text_field", 1),
        ("chat_template_path", 1),
        ("eos_token", 5),
        ("bnb_4bit_quant_type", "nf5"),
    ],
)
def test_wrong_types_name_the_key(key: str, value: Any) -> None:
    data = {key: value}
    if key == "packing_strategy":
        data["packing"] = True
    if key == "bnb_4bit_quant_type":
        data["use_4bit"] = True
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict(data)
    assert isinstance(info.value, RecipeError)
    assert info.value.key == key
    assert repr(key) in str(info.value)


def test_a_field_set_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="'max_seq_length' and 'max_length'"):
        SFTRecipe.from_dict({"max_seq_length": 512, "max_length": 1024})
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_dict({"training": {"seed": 1}, "seed": 2})
    assert info.value.key == "seed"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("lora_r: 8\npacking: [ffd\nlearning_rate: 1\n", 3),
        ("lora_r: 8\nlora_alpha: 16\n  lora_dropout: 0.1\n", 3),
        ("model: gpt2\ndataset: {source: a.jsonl\n", 3),
        ("a: 1\n\tb: 2\n", 2),
    ],
)
def test_malformed_yaml_names_the_line(text: str, line: int, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_yaml(text)
    assert f"at line {line}" in str(info.value)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        SFTRecipe.from_yaml(path)
    assert f"at line {line}" in str(info.value)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("missing", ["configs/missing.yaml", "missing", r"C:\configs\sft.yaml"])
def test_missing_yaml_file(missing: str, tmp_path: Path) -> None:
    for arg in (missing, tmp_path / missing):
        with pytest.raises(ConfigError, match="does not exist") as info:
            SFTRecipe.from_yaml(arg)
        assert info.value.path is not None


@pytest.mark.parametrize("text", ["- lora\n- packing\n", "just text\n", "", "42\n"])
def test_yaml_that_is_not_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(text)


# ------------------------------------------------------------------------------------------ property test

NAMES = st.text(alphabet=string.ascii_letters + string.digits + "_-./: ", min_size=1, max_size=20).filter(
    lambda s: bool(s.strip())
)
TEXT = st.text(max_size=30)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | TEXT
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
)
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
ROW_STRATEGY = st.dictionaries(st.text(min_size=1, max_size=10), PLAIN, min_size=1, max_size=4)

TRAINING_VALUES = {
    "learning_rate": st.floats(1e-9, 1.0) | st.sampled_from(["5e-5", "1e-4"]),
    "num_train_epochs": st.integers(1, 10) | st.floats(0.1, 10),
    "per_device_train_batch_size": st.integers(1, 64),
    "max_length": st.none() | st.integers(8, 8192),
    "seed": st.integers(0, 2**31),
    "output_dir": NAMES,
    "bf16": st.booleans(),
    "report_to": st.sampled_from(["none", "tensorboard"])
    | st.lists(st.sampled_from(["wandb", "tensorboard"])),
    "lr_scheduler_kwargs": st.dictionaries(st.text(max_size=8), PLAIN, max_size=3),
    "optim_args": st.none() | TEXT,
}
ALIAS_OF = {
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "max_length": "max_seq_length",
}


@st.composite
def training_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for ``training()``: some SFTConfig fields, each under its own name or its alias."""
    fields = draw(st.fixed_dictionaries({}, optional=TRAINING_VALUES))
    return {
        ALIAS_OF[key] if key in ALIAS_OF and draw(st.booleans()) else key: value
        for key, value in fields.items()
    }


STEPS = st.one_of(
    st.tuples(
        st.just("model"),
        st.tuples(NAMES),
        st.fixed_dictionaries(
            {},
            optional={
                "tokenizer": NAMES,
                "dtype": st.sampled_from(["auto", "float32", "bfloat16", "float16"]),
                "attn_implementation": st.sampled_from(["sdpa", "eager", "flash_attention_2"]),
                "trust_remote_code": st.booleans(),
                "revision": NAMES,
            },
        ),
    ),
    st.tuples(
        st.just("dataset"),
        st.tuples(NAMES | st.lists(ROW_STRATEGY, min_size=1, max_size=4)),
        st.fixed_dictionaries(
            {},
            optional={
                "format": st.sampled_from(["auto", *format_names()]),
                "split": NAMES,
                "text_field": NAMES,
                "columns": st.dictionaries(NAMES, NAMES, max_size=2),
                "on_bad_rows": st.sampled_from(["error", "skip"]),
            },
        ),
    ),
    st.tuples(
        st.just("lora"),
        st.just(()),
        st.fixed_dictionaries(
            {},
            optional={
                "r": st.integers(1, 512),
                "alpha": st.integers(1, 512) | st.floats(0.01, 512),
                "dropout": st.floats(0, 0.99),
                "target_modules": st.just("all-linear") | st.lists(NAMES, min_size=1, max_size=3),
                "use_dora": st.booleans(),
                "use_rslora": st.booleans(),
                "modules_to_save": st.lists(NAMES, max_size=2),
                "bias": st.sampled_from(["none", "all", "lora_only"]),
                "layers_pattern": st.none() | NAMES,
            },
        ),
    ),
    st.tuples(
        st.just("quantize"),
        st.tuples(st.sampled_from(["4bit", "8bit"])),
        st.fixed_dictionaries(
            {},
            optional={
                "quant_type": st.sampled_from(["nf4", "fp4"]),
                "double_quant": st.booleans(),
                "compute_dtype": st.sampled_from(["auto", "bfloat16", "float16", "float32"]),
            },
        ),
    ),
    st.tuples(st.just("packing"), st.tuples(st.sampled_from([*packer_names(), True, False])), st.just({})),
    st.tuples(st.just("neftune"), st.tuples(st.floats(0.001, 100) | st.integers(1, 20)), st.just({})),
    st.tuples(st.just("liger"), st.tuples(st.booleans()), st.just({})),
    st.tuples(st.just("loss"), st.tuples(st.sampled_from(LOSS_MODES)), st.just({})),
    st.tuples(st.just("chat_template"), st.tuples(st.none() | NAMES), st.just({})),
    st.tuples(
        st.just("tokens"),
        st.just(()),
        st.fixed_dictionaries({}, optional={"eos": st.none() | NAMES, "pad": st.none() | NAMES}),
    ),
    st.tuples(st.just("training"), st.just(()), training_kwargs()),
)


def apply(steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> SFTRecipe:
    recipe = SFTRecipe()
    for method, args, kwargs in steps:
        recipe = getattr(recipe, method)(*args, **kwargs)
    return recipe


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEPS, max_size=8))
def test_random_recipes_round_trip_and_equal_their_twin(
    steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]],
) -> None:
    recipe = apply(steps)
    twin = apply(copy.deepcopy(steps))
    assert recipe == twin
    assert hash(recipe) == hash(twin)

    data = recipe.to_dict()
    from_dict = SFTRecipe.from_dict(data)
    assert from_dict == recipe
    assert hash(from_dict) == hash(recipe)
    assert from_dict.to_dict() == data

    text = recipe.to_yaml()
    from_yaml = SFTRecipe.from_yaml(text)
    assert from_yaml == recipe
    assert hash(from_yaml) == hash(recipe)
    assert from_yaml.to_yaml() == text
