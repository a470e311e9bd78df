"""The trl-sft-kit command through a subprocess: inspect, train with --set, legacy configs, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trl_sft_kit import SFTRecipe
from trl_sft_kit.cli import UsageError, apply_overrides, main

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"
END_OF_TURN = "<|im_end|>\n"


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "TRL_SFT_KIT_MODEL"}
    environment.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "trl_sft_kit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    for needle in needles:
        assert needle in done.stderr, done.stderr


# ------------------------------------------------------------------------------------------ help


@pytest.mark.parametrize("command", ["", "inspect", "train", "demo", "generate"])
def test_help_on_each_command(command: str, tmp_path: Path) -> None:
    done = run_cli(*([command] if command else []), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: trl-sft-kit {command}".rstrip())
    if command == "inspect":
        assert all(flag in done.stdout for flag in ("--model", "--format", "--chat-template", "--max-length"))
    if command == "train":
        assert all(flag in done.stdout for flag in ("--set", "--resume", "--overwrite"))


def test_console_script_is_the_same_command(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("trl-sft-kit")
    if not script.exists():
        pytest.skip("trl-sft-kit is not installed as a console script in this environment")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and "inspect" in done.stdout and "train" in done.stdout


# ------------------------------------------------------------------------------------------ inspect


def test_inspect_json_marks_exactly_the_assistant_tokens(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = run_cli(
        "inspect", str(CHAT), "--model", str(tiny_model_dir), "--loss", "assistant_only",
        "--max-length", "64", "--rows", "3", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert report["format"] == "messages" and report["max_length"] == 64
    assert report["lengths"]["count"] == 64 and report["truncation"]["rows"] > 0
    assert [p["strategy"] for p in report["packing"]][:2] == ["ffd", "bfd"]
    rows = [json.loads(line) for line in CHAT.read_text(encoding="utf-8").splitlines()[:3]]
    assert len(report["rows"]) == 3
    for shown, row in zip(report["rows"], rows, strict=True):
        trained = "".join(t for t, loss in zip(shown["tokens"], shown["loss_mask"], strict=True) if loss)
        expected = "".join(m["content"] + END_OF_TURN for m in row["messages"] if m["role"] == "assistant")
        assert trained == expected


def test_inspect_text_takes_the_model_from_the_environment(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = run_cli(
        "inspect", str(CHAT), "--rows", "1", cwd=tmp_path, env={"TRL_SFT_KIT_MODEL": str(tiny_model_dir)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "format 'messages'" in out and "$TRL_SFT_KIT_MODEL" in out and "model not loaded" in out
    # loss 'auto' on chat data trains the assistant turns: the model's own words
    assert "--- row 0: 44 tokens, 10 carry loss\n<|im_start|>system\nYou answer simple questions." in out
    assert "[[The opposite of hot is cold.<|im_end|>\n]]" in out
    assert "loss: auto -> assistant_only;" in out and "(18.9%: assistant turns" in out
    assert "token lengths" in out and "packing into rows of 1,024 tokens" in out
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal


def test_inspect_a_recipe_file_with_a_chat_template(
    tiny_model_dir_no_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = SFTRecipe().model(tiny_model_dir_no_template).dataset(CHAT).loss("assistant_only")
    recipe.to_yaml(tmp_path / "recipe.yaml")
    args = ["inspect", str(tmp_path / "recipe.yaml"), "--chat-template", "qwen2_5", "--rows", "1", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chat_template"] == "qwen2_5" and report["loss"]["effective"] == "assistant_only"
    assert main([*args, "--format", "alpaca"]) == 1  # the file's chat rows are not alpaca rows
    assert "alpaca" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ train


def _kit_recipe(tiny_model_dir: Path, output_dir: Path) -> SFTRecipe:
    return (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=16)
        .training(
            output_dir=str(output_dir),
            max_length=128,
            max_steps=50,
            per_device_train_batch_size=8,
            logging_steps=1,
            save_strategy="no",
            activation_checkpointing=False,
            disable_tqdm=True,
        )
    )


def test_train_with_set_overwrite_and_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _kit_recipe(tiny_model_dir, out).training(save_strategy="steps", save_steps=1).to_yaml(
        tmp_path / "r.yaml"
    )
    (out / "checkpoint-9").mkdir(parents=True)  # what an earlier run left behind
    (out / "run.json").write_text("{}", encoding="utf-8")
    overrides = (
        "--set",
        "max_steps=2",
        "--set",
        "lora.r=4",
        "--set",
        "packing=bfd",
        "--set",
        "training.lr=5e-4",
    )
    done = run_cli("train", "r.yaml", *overrides, "--overwrite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 2 steps; final loss" in done.stdout
    assert "metrics: " in done.stdout and "train_loss=" in done.stdout
    assert f"saved to {out} (LoRA adapter)" in done.stdout
    assert (out / "adapter_model.safetensors").is_file() and not (out / "checkpoint-9").exists()
    # the output folder holds the recipe that produced it, overrides included: the run can be repeated
    assert f"recipe: {out / 'recipe.yaml'}" in done.stdout
    again = SFTRecipe.from_yaml(out / "recipe.yaml")
    expected = (
        _kit_recipe(tiny_model_dir, out)
        .lora(r=4)
        .packing("bfd")
        .training(save_strategy="steps", save_steps=1, max_steps=2, learning_rate=5e-4)
    )
    assert again == expected

    refused = run_cli("train", "r.yaml", "--set", "max_steps=3", cwd=tmp_path)
    assert_clean_failure(refused, 1, "already holds files", "--resume", "--overwrite")
    resumed = run_cli("train", "r.yaml", *overrides, "--set", "max_steps=3", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trained 3 steps" in resumed.stdout


def test_train_a_legacy_stage_config_with_set(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = {
        "stages": ["trl_sft"],
        "output_dir": str(tmp_path / "pipeline-level"),
        "stage_configs": {
            "trl_sft": {
                "model_name_or_path": str(tiny_model_dir),
                "dataset_name_or_path": str(CHAT),
                "max_seq_length": 256,
                "num_train_epochs": 1,
                "max_steps": 40,
                "per_device_train_batch_size": 8,
                "learning_rate": "5e-5",
                "lora_r": 16,
                "lora_alpha": 8,
                "packing": False,
                "assistant_only_loss": True,
                "save_strategy": "no",
                "report_to": "none",
                "disable_tqdm": True,
            }
        },
    }
    (tmp_path / "legacy.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "legacy-out"
    done = run_cli(
        "train", "legacy.yaml", "--set", "max_steps=2", "--set", "lora_r=4", "--set", "max_length=128",
        "--set", f"output_dir={out}", "--set", "activation_checkpointing=false", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 2 steps" in done.stdout
    assert (out / "adapter_model.safetensors").is_file() and not (tmp_path / "pipeline-level").exists()
    again = SFTRecipe.from_yaml(out / "recipe.yaml")
    assert again.lora_spec is not None and again.lora_spec.r == 4
    assert again.training_fields["max_length"] == 128 and again.loss_spec.mode == "assistant_only"


# ------------------------------------------------------------------------------------------ bad input


def test_bad_input_gives_one_clear_line_and_a_nonzero_exit(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    (tmp_path / "typo.yaml").write_text(f"dataset_name_or_pth: {CHAT}\n", encoding="utf-8")
    _kit_recipe(tiny_model_dir, tmp_path / "o").to_yaml(tmp_path / "ok.yaml")
    model = ("--model", str(tiny_model_dir))
    cases: list[tuple[tuple[str, ...], int, tuple[str, ...]]] = [
        (("inspect", "missing.jsonl", *model), 1, ("dataset path 'missing.jsonl' does not exist",)),
        (
            ("inspect", str(CHAT), "--format", "nope", *model),
            1,
            ("unknown dataset format 'nope'", "'messages'"),
        ),
        (("train", "bad.yaml"), 1, ("error: bad.yaml is not valid YAML at line",)),
        (("train", "typo.yaml"), 1, ("unknown key 'dataset_name_or_pth'", "'dataset_name_or_path'")),
        (("train", "ok.yaml", "--set", "lora_rr=4"), 1, ("unknown key 'lora_rr'", "'lora_r'")),
        (("train", "missing.yaml"), 1, ("config file 'missing.yaml' does not exist",)),
        (("train", "ok.yaml", "--set", "max_steps"), 2, ("--set takes KEY=VALUE",)),
        (("train", "ok.yaml", "--resume", "--overwrite"), 2, ("choose one",)),
        (("inspect", str(CHAT), "--max-length", "0"), 2, ("--max-length: must be at least 1",)),
        (("inspect", str(CHAT), "--loss", "most"), 2, ("invalid choice: 'most'",)),
        (("bake",), 2, ("invalid choice: 'bake'",)),
    ]
    for args, code, needles in cases:
        assert_clean_failure(run_cli(*args, cwd=tmp_path), code, *needles)


def test_unexpected_failures_are_one_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import trl_sft_kit.recipe

    def broken(self: Any, rows: int = 5) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(trl_sft_kit.recipe.SFTRecipe, "inspect", broken)
    assert main(["inspect", str(CHAT)]) == 1
    err = capsys.readouterr().err
    assert "error: ZeroDivisionError: boom" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "inspect", str(CHAT)])


# ------------------------------------------------------------------------------------------ --set


def test_overrides_land_where_each_layout_keeps_the_setting() -> None:
    kit = {"model": "m", "packing": "bfd", "lora": True, "training": {"max_length": 256, "epochs": 3}}
    assert apply_overrides(
        kit,
        [("max_steps", 2), ("num_train_epochs", 1), ("max_seq_length", 64), ("packing.overflow", "split")],
    ) == {
        "model": "m",
        "packing": {"strategy": "bfd", "overflow": "split"},
        "lora": True,
        "training": {"max_steps": 2, "num_train_epochs": 1, "max_seq_length": 64},
    }
    assert apply_overrides(kit, [("lora.r", 4), ("model.dtype", "float32"), ("lora_alpha", 8)]) == {
        **kit,
        "model": {"source": "m", "dtype": "float32"},
        "lora": {"r": 4},
        "lora_alpha": 8,
    }
    flat = {"model_name_or_path": "m", "max_seq_length": 256, "lora_r": 16}
    assert apply_overrides(flat, [("max_length", 64), ("lora_r", 4), ("max_steps", 2)]) == {
        "model_name_or_path": "m",
        "max_length": 64,
        "lora_r": 4,
        "max_steps": 2,
    }
    assert apply_overrides(flat, [("training.max_steps", 2)]) == {**flat, "training": {"max_steps": 2}}
    legacy = {"stages": ["trl_sft"], "output_dir": "top", "stage_configs": {"trl_sft": {"lora_r": 16}}}
    assert apply_overrides(legacy, [("stage_configs.trl_sft.lora_r", 4), ("output_dir", "o")]) == {
        "lora_r": 4,
        "output_dir": "o",
    }
    assert kit["training"] == {"max_length": 256, "epochs": 3}  # the input is never changed


def test_an_override_inside_a_value_that_is_no_section_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"'neftune' is 5\.0, not a section"):
        apply_overrides({"neftune": 5.0}, [("neftune.alpha", 1.0)])


def test_json_failures_are_a_json_object_on_stdout(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"instruction": "Q", "output": "A"}\n{"instruction": "", "output": "A"}\n', encoding="utf-8"
    )
    done = run_cli("inspect", str(bad), "--model", str(tiny_model_dir), "--json", cwd=tmp_path)
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "RowError" and error["file"] == str(bad) and error["line"] == 2
    assert error["field"] == "instruction" and "--on-bad-rows skip" in error["message"]
    assert "on_bad_rows=" not in error["message"]
    skipped = run_cli(
        "inspect", str(bad), "--model", str(tiny_model_dir), "--json", "--on-bad-rows", "skip", cwd=tmp_path
    )
    assert skipped.returncode == 0, skipped.stderr
    missing = run_cli("inspect", "missing.jsonl", "--model", str(tiny_model_dir), "--json", cwd=tmp_path)
    error = json.loads(missing.stdout)["error"]
    assert missing.returncode == 1 and error["type"] == "DataSourceError" and error["file"] == "missing.jsonl"


def test_command_line_advice_names_flags() -> None:
    from trl_sft_kit.cli_errors import command_line_advice

    text = command_line_advice(
        "choose one with .dataset(..., format=<name>); or .dataset(..., on_bad_rows='skip'); use loss('all')."
    )
    assert text == "choose one with --format NAME; or --on-bad-rows skip; use --loss all."
