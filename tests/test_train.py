"""train(): a tiny real model trains through TRL's SFTTrainer on CPU, and its adapter loads back."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trl_sft_kit import SFTRecipe

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"


def test_lora_training_lowers_the_loss_and_saves_an_adapter_that_loads_back(
    tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=8, alpha=16, dropout=0.0)
        .packing("bfd")
        .neftune(5.0)
        .training(**fast_training)
        .training(epochs=4, lr=1e-2, logging_steps=2)
    )
    compiled = recipe.compile()
    result = compiled.train()

    assert result.global_step > 0
    assert result.losses and all(math.isfinite(loss) for loss in result.losses)
    first, last = result.losses[0], result.losses[-1]
    assert last < first - 0.2, result.losses
    assert math.isfinite(result.metrics["train_loss"])

    assert result.adapter_path is not None and result.model_path is None
    assert (result.adapter_path / "adapter_model.safetensors").is_file()
    assert (result.adapter_path / "adapter_config.json").is_file()
    assert (result.adapter_path / "tokenizer_config.json").is_file()

    trained = compiled.trainer.model.eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reloaded = PeftModel.from_pretrained(base, result.adapter_path).eval()
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
        untrained = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    assert not torch.allclose(untrained, got, atol=1e-4)  # the adapter really changed the model


@pytest.mark.parametrize("fmt", ["instruction_response", "alpaca", "prompt_completion", "text"])
def test_each_issue_two_format_trains(
    tiny_model_dir: Path, fast_training: dict[str, Any], sample_file: Any, fmt: str
) -> None:
    result = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(sample_file(fmt))
        .lora(r=4)
        .training(**fast_training, max_steps=2)
    ).train()
    assert result.global_step == 2
    assert all(math.isfinite(loss) for loss in result.losses)


def test_full_fine_tune_saves_a_model(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    from transformers import AutoModelForCausalLM

    result = SFTRecipe().model(tiny_model_dir).dataset(CHAT).training(**fast_training, max_steps=2).train()
    assert result.adapter_path is None and result.model_path is not None
    AutoModelForCausalLM.from_pretrained(result.model_path)


def test_qlora_trains_on_cpu(tiny_model_dir: Path, fast_training: dict[str, Any]) -> None:
    result = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=4)
        .quantize("4bit")
        .training(**fast_training, max_steps=2)
    ).train()
    assert result.global_step == 2 and all(math.isfinite(loss) for loss in result.losses)
    assert result.adapter_path is not None


def test_flat_legacy_stage_config_trains(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = {
        "stages": ["trl_sft"],
        "stage_configs": {
            "trl_sft": {
                "model_name_or_path": str(tiny_model_dir),
                "dataset_name_or_path": str(CHAT),
                "dataset_text_field": "messages",
                "output_dir": str(tmp_path / "legacy"),
                "max_seq_length": 128,
                "num_train_epochs": 1,
                "max_steps": 2,
                "per_device_train_batch_size": 8,
                "learning_rate": "5e-5",
                "lora_r": 4,
                "lora_alpha": 8,
                "lora_dropout": 0.1,
                "packing": False,
                "packing_strategy": "ffd",
                "completion_only_loss": None,
                "assistant_only_loss": False,
                "neftune_noise_alpha": 5.0,
                "use_liger_kernel": False,
                "save_strategy": "no",
                "report_to": "none",
            }
        },
    }
    path = tmp_path / "legacy.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    recipe = SFTRecipe.from_yaml(path)
    assert recipe.training_fields["learning_rate"] == pytest.approx(5e-5)
    assert recipe.training_fields["max_length"] == 128
    result = recipe.train()
    assert result.global_step == 2
    assert (tmp_path / "legacy" / "adapter_model.safetensors").is_file()


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trl_sft_kit", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_cli_train_with_overrides_and_bad_input(tmp_path: Path, tiny_model_dir: Path) -> None:
    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=4)
        .training(
            output_dir=str(tmp_path / "cli"),
            max_length=128,
            save_strategy="no",
            activation_checkpointing=False,
        )
    )
    path = tmp_path / "recipe.yaml"
    recipe.to_yaml(path)
    done = _run_cli(
        "train", str(path), "--set", "max_steps=2", "--set", "per_device_train_batch_size=4", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained 2 steps" in done.stdout
    assert (tmp_path / "cli" / "adapter_model.safetensors").is_file()

    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_name_or_pth: x.jsonl\n", encoding="utf-8")
    done = _run_cli("train", str(bad), cwd=tmp_path)
    assert done.returncode == 1
    assert "dataset_name_or_path" in done.stderr and "Traceback" not in done.stderr


def test_cli_demo_runs_offline(tmp_path: Path) -> None:
    done = _run_cli("demo", "--epochs", "2", "--output-dir", str(tmp_path / "demo"), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loss fell from" in done.stdout
    assert (tmp_path / "demo" / "adapter_model.safetensors").is_file()
