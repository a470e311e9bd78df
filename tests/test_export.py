"""After train(): merge the LoRA adapter, generate, the model card and run files, load_result, the CLI.

One tiny LoRA run (chat data, assistant-only loss, ffd packing) is trained once for the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trl_sft_kit import SFTRecipe
from trl_sft_kit.card import library_versions, render_card
from trl_sft_kit.compile import Compiled
from trl_sft_kit.errors import OutputExistsError, RecipeError, RunError
from trl_sft_kit.result import TrainResult, load_result

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"
IDS = [[1, 5, 9, 42, 7, 3, 11, 2]]
QUESTION = [{"role": "user", "content": "What colour is the sky?"}]


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Compiled, TrainResult]:
    out = tmp_path_factory.mktemp("export") / "out"
    recipe = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=4, alpha=16, dropout=0.0)
        .packing("ffd")
        .loss("assistant_only")
        .training(
            output_dir=str(out),
            max_length=128,
            per_device_train_batch_size=8,
            logging_steps=1,
            save_strategy="no",
            activation_checkpointing=False,
            disable_tqdm=True,
            seed=0,
            max_steps=4,
            learning_rate=1e-2,
        )
    )
    compiled = recipe.compile()
    return compiled, compiled.train()


@pytest.fixture(scope="module")
def merged_dir(run: tuple[Compiled, TrainResult], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run[1].merge(tmp_path_factory.mktemp("merged") / "model")


def _logits(model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(IDS)).logits


def test_merged_model_logits_equal_the_adapter_models(
    run: tuple[Compiled, TrainResult], merged_dir: Path, tiny_model_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, result = run
    assert result.adapter_path is not None
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not isinstance(merged, PeftModel)
    assert not (merged_dir / "adapter_config.json").exists()
    assert (merged_dir / "model.safetensors").is_file()
    assert AutoTokenizer.from_pretrained(merged_dir).chat_template  # the chat template travels along

    adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), result.adapter_path
    )
    expected = _logits(adapter)
    got = _logits(merged)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert torch.allclose(got, _logits(result.model), atol=1e-4)  # the model still in memory
    base = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert not torch.allclose(got, base, atol=1e-3)  # the merge really carries the adapter


def test_generate_from_adapter_and_merged_model_agree(
    run: tuple[Compiled, TrainResult], merged_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, result = run
    prompts: list[Any] = [QUESTION, "What colour is grass?"]
    mode = result.model.training
    in_memory = result.generate(prompts, max_new_tokens=8)
    assert result.model.training == mode  # generate() puts the model back the way it found it
    assert len(in_memory) == 2 and all(isinstance(answer, str) for answer in in_memory)
    assert result.generate(QUESTION, max_new_tokens=8) == in_memory[:1]  # one conversation, one answer
    assert result.generate("What colour is grass?", max_new_tokens=8) == in_memory[1:]

    from_adapter_folder = load_result(result.output_dir).generate(prompts, max_new_tokens=8)
    from_merged_folder = load_result(merged_dir).generate(prompts, max_new_tokens=8)
    assert from_adapter_folder == in_memory
    assert from_merged_folder == in_memory

    # The merged folder generates with plain transformers too, and says the same.
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    text = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=8, do_sample=False)
    plain = tokenizer.decode(output[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    assert plain == in_memory[0]


def test_generate_refuses_wrong_input(run: tuple[Compiled, TrainResult], tiny_model_dir: Path) -> None:
    from trl_sft_kit.testing import tiny_model, tiny_tokenizer

    _, result = run
    assert result.generate([], max_new_tokens=4) == []
    with pytest.raises(RecipeError, match="prompt string, a conversation"):
        result.generate(42)  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="max_new_tokens"):
        result.generate("hi", max_new_tokens=0)
    tokenizer = tiny_tokenizer(None)
    plain = TrainResult(
        {}, tiny_model_dir, None, tiny_model_dir, (), 0, model=tiny_model(tokenizer), tokenizer=tokenizer
    )
    assert len(plain.generate("hello", max_new_tokens=3)) == 1
    with pytest.raises(RecipeError, match="no chat template"):
        plain.generate(QUESTION)


def test_merge_refuses_its_own_folder_and_unknown_dtypes(
    run: tuple[Compiled, TrainResult], tmp_path: Path
) -> None:
    _, result = run
    with pytest.raises(RecipeError, match="own folder"):
        result.merge(result.output_dir)
    with pytest.raises(RecipeError, match="dtype"):
        result.merge(tmp_path / "m", dtype="int3")


def test_merge_refuses_a_folder_holding_files_unless_overwrite(
    run: tuple[Compiled, TrainResult], merged_dir: Path, tmp_path: Path
) -> None:
    _, result = run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="already holds files"):
        result.merge(mine)
    with pytest.raises(OutputExistsError, match="will not clear"):
        result.merge(mine, overwrite=True)  # not a folder the kit wrote: never cleared
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        result.merge(merged_dir)
    (merged_dir / "stale.bin").write_bytes(b"old")
    assert result.merge(merged_dir, overwrite=True) == merged_dir
    assert not (merged_dir / "stale.bin").exists() and (merged_dir / "config.json").is_file()


def test_model_card_and_run_files_follow_the_recipe(
    run: tuple[Compiled, TrainResult], tiny_model_dir: Path
) -> None:
    compiled, result = run
    out = result.output_dir
    card = (out / "README.md").read_text(encoding="utf-8")
    front, body = card.split("---\n", 2)[1:]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "peft"
    assert {"trl", "sft", "trl-sft-kit"} <= set(meta["tags"])
    assert "base_model" not in meta  # a local folder is no Hub id: the Hub would refuse the card
    assert f"`{tiny_model_dir}`" in body

    report = compiled.report
    assert f"`{report.source}` | `{report.format}`" in body and report.format == "messages"
    assert f"| {report.rows_read} | {report.rows_kept} | 0 |" in body
    assert "**Loss mode:** `assistant_only`" in body
    tokens = compiled.tokenization
    assert f"{tokens.tokens} tokens, {tokens.trained_tokens} carry loss" in body
    assert compiled.packing is not None and compiled.packing.summary() in body
    assert "r=4, alpha=16, dropout=0.0" in body
    assert "**Quantization:** none" in body
    assert f"| train_loss | {result.metrics['train_loss']:.6g} |" in body
    assert f"| global_step | {result.global_step} |" in body
    assert "| `max_steps` | `4` |" in body and "| `lr_scheduler_type` | `linear` |" in body
    for name, version in library_versions().items():
        assert f"- {name}: {version}" in body
    for name in ("python", "torch", "transformers", "trl", "peft", "datasets", "trl_sft_kit"):
        assert f"- {name}: " in body

    assert SFTRecipe.from_yaml(out / "recipe.yaml") == compiled.recipe
    assert "```yaml\nmodel:" in body  # short recipes are shown in the card

    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["global_step"] == result.global_step == 4
    assert info["losses"] == list(result.losses) and info["metrics"] == result.metrics
    assert info["data"]["rows_read"] == report.rows_read and info["data"]["format"] == "messages"
    assert info["packing"]["rows"] == compiled.packing.rows
    assert info["lora"]["r"] == 4 and info["quantization"] is None
    assert set(info["versions"]) >= {
        "python",
        "torch",
        "transformers",
        "trl",
        "peft",
        "datasets",
        "trl_sft_kit",
    }


def test_merged_folder_has_a_card_for_the_merged_model(merged_dir: Path) -> None:
    card = (merged_dir / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n", 2)[1])
    assert meta["library_name"] == "transformers"
    assert "merging a LoRA adapter" in card and "AutoModelForCausalLM.from_pretrained" in card
    assert (merged_dir / "recipe.yaml").is_file() and (merged_dir / "run.json").is_file()


def test_card_front_matter_names_a_hub_base_model() -> None:
    info = {"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "kind": "lora", "lora": {"r": 8, "alpha": 16}}
    meta = yaml.safe_load(render_card(info).split("---\n", 2)[1])
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert meta["library_name"] == "peft" and meta["tags"][:3] == ["trl", "sft", "trl-sft-kit"]
    merged = yaml.safe_load(render_card(info, merged=True).split("---\n", 2)[1])
    assert merged["library_name"] == "transformers" and merged["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_load_result_round_trip(run: tuple[Compiled, TrainResult], tmp_path: Path) -> None:
    compiled, result = run
    loaded = load_result(result.output_dir)
    assert loaded == result  # metrics, folders, losses, steps, recipe, base model, data summary
    assert loaded.recipe == compiled.recipe and loaded.base_model == result.base_model
    assert loaded.model is None and loaded.tokenizer is None

    with pytest.raises(RunError, match="not a folder"):
        load_result(tmp_path / "missing")
    with pytest.raises(RunError, match="not a training output folder") as caught:
        load_result(tmp_path)
    assert not isinstance(caught.value, RecipeError) and caught.value.path == str(tmp_path)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trl_sft_kit", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_cli_generate(run: tuple[Compiled, TrainResult], tmp_path: Path) -> None:
    _, result = run
    done = _run_cli(
        "generate", str(result.output_dir), "--prompt", "What colour is the sky?", "--max-new-tokens", "8"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = result.generate(QUESTION, max_new_tokens=8)[0].strip() or "(an empty answer)"
    assert done.stdout == f">>> What colour is the sky?\n{expected}\n\n"

    done = _run_cli("generate", str(tmp_path), "--prompt", "hi")
    assert done.returncode == 1
    assert "not a training output folder" in done.stderr and "Traceback" not in done.stderr


def test_push_uploads_the_folder_or_the_merged_model(
    run: tuple[Compiled, TrainResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    _, result = run
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls: list[dict[str, Any]] = []

    def create_repo(self: Any, repo_id: str, **kwargs: Any) -> str:
        calls.append({"create": repo_id, **kwargs})
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: Any, **kwargs: Any) -> None:
        folder = Path(kwargs["folder_path"])
        calls.append({**kwargs, "files": sorted(p.name for p in folder.iterdir())})

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)

    url = result.push_to_hub("me/tiny-sft", token="hf_fake")
    assert url == "https://huggingface.co/me/tiny-sft"
    create, upload = calls
    assert create["private"] is True and create["exist_ok"] is True
    assert Path(upload["folder_path"]) == result.output_dir
    assert {"adapter_model.safetensors", "README.md", "recipe.yaml", "run.json"} <= set(upload["files"])

    calls.clear()
    result.push_to_hub("me/tiny-sft-merged", private=False, merged=True, token="hf_fake")
    create, upload = calls
    assert create["private"] is False
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= set(upload["files"])
    assert "adapter_config.json" not in upload["files"]
