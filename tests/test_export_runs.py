"""Merging a QLoRA run into full weights, and a run whose recipe holds a loaded model object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trl_sft_kit import SFTRecipe
from trl_sft_kit.result import load_result

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"
IDS = [[1, 5, 9, 42, 7, 3, 11, 2]]


def _logits(model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor(IDS)).logits


def test_qlora_merges_into_the_base_in_the_chosen_dtype_not_4bit(
    tiny_model_dir: Path, fast_training: dict[str, Any], tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=4, dropout=0.0)
        .quantize("4bit")
        .training(**fast_training, max_steps=2, learning_rate=1e-2)
    ).train()
    assert len(result.generate("What colour is the sky?", max_new_tokens=3)) == 1  # the 4-bit model in memory

    card = (result.output_dir / "README.md").read_text(encoding="utf-8")
    assert "A QLoRA adapter" in card and "bitsandbytes 4bit, quant_type=nf4, double_quant=True" in card

    merged_dir = result.merge(tmp_path / "merged", dtype="float32")
    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert {p.dtype for p in merged.parameters()} == {torch.float32}
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapter = PeftModel.from_pretrained(base, result.output_dir)
    assert torch.allclose(_logits(merged), _logits(adapter), atol=1e-4)
    assert "trained as QLoRA on the 4bit base" in (merged_dir / "README.md").read_text(encoding="utf-8")


def test_a_loaded_model_object_trains_merges_and_says_its_recipe_was_not_written(
    tiny_model_dir: Path, fast_training: dict[str, Any], tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    result = (
        SFTRecipe()
        .model(model, tokenizer=tokenizer)
        .dataset(CHAT)
        .lora(r=4, dropout=0.0)
        .training(**fast_training, max_steps=2, learning_rate=1e-2)
    ).train()
    out = result.output_dir
    assert not (out / "recipe.yaml").exists()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "could not be written to `recipe.yaml`" in card and "loaded model" in card
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["recipe_file"] is None

    merged_dir = result.merge(tmp_path / "merged")  # merges a copy: the base object cannot be reloaded
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert torch.allclose(_logits(merged), _logits(result.model), atol=1e-4)

    loaded = load_result(out)  # no recipe: the base model is found through adapter_config.json
    assert loaded.recipe is None and loaded.base_model == result.base_model
    question = [{"role": "user", "content": "What colour is snow?"}]
    assert loaded.generate(question, max_new_tokens=6) == result.generate(question, max_new_tokens=6)
