"""The tiny VLM trains through the real SFTTrainer with LoRA; masks leave image tokens and prompts out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.testing.vision import IMAGE_TOKENS_PER_IMAGE, sample_image, write_vision_dataset
from trl_sft_kit.vision.compile import VisionCollator


def recipe_for(model: Path, data: Path, out: Path, **loss: Any) -> SFTRecipe:
    return (
        SFTRecipe()
        .model(str(model))
        .dataset(str(data))
        .lora(r=4)
        .loss(**loss)
        .training(
            output_dir=str(out),
            max_steps=4,
            per_device_train_batch_size=4,
            learning_rate=5e-3,
            logging_steps=1,
            save_strategy="no",
            disable_tqdm=True,
            seed=0,
        )
    )


def _batch(collator: VisionCollator, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return collator([dict(row) for row in rows])


def test_labels_never_train_image_tokens_and_assistant_only_trains_the_answer(
    any_vlm_dir: Path, tmp_path: Path
) -> None:
    # Checked on TRL's own vision training templates: llava_next_training and smolvlm_training.
    data = write_vision_dataset(tmp_path / "data", 4)
    for mode, trained_prompt in (("assistant_only", False), ("all", True)):
        compiled = recipe_for(any_vlm_dir, data, tmp_path / mode, mode=mode).compile()
        trainer: Any = compiled.trainer
        collator = trainer.data_collator
        assert isinstance(collator, VisionCollator)
        batch = _batch(collator, [trainer.train_dataset[i] for i in range(2)])
        image_id = collator.image_token_id
        ids, labels = batch["input_ids"], batch["labels"]
        images = ids == image_id
        assert int(images.sum()) == 2 * IMAGE_TOKENS_PER_IMAGE
        assert bool((labels[images] == -100).all())  # image tokens are inputs, never trained
        assert set(collator.media_token_ids) >= {image_id}
        for media in collator.media_token_ids:  # nor the tokens around an image (<global-img>, ...)
            assert bool((labels[ids == media] == -100).all())
        tokenizer = trainer.processing_class.tokenizer
        trained = tokenizer.decode(ids[0][labels[0] != -100])
        answer = trainer.train_dataset[0]["messages"][1]["content"][0]["text"]
        if trained_prompt:
            assert "What colour is the square?" in trained and "<image>" not in trained
            assert "<global-img>" not in trained and "<fake_token_around_image>" not in trained
        else:
            assert trained.strip() == f"{answer}{tokenizer.eos_token}"
        assert compiled.tokenization.trained_tokens > 0


def test_the_tiny_vlm_trains_with_lora_on_the_language_model_and_the_adapter_generates(
    any_vlm_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    data = write_vision_dataset(tmp_path / "data", 8)
    compiled = recipe_for(any_vlm_dir, data, tmp_path / "out", mode="assistant_only").compile()
    model = compiled.trainer.model
    assert model is not None
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    language = ("language_model", "text_model")
    assert trainable and all(any(part in name for part in language) and "lora_" in name for name in trainable)
    vision = ("vision_tower", "vision_model", "multi_modal_projector", "connector")
    vision_before = {
        n: p.detach().clone() for n, p in model.named_parameters() if any(v in n for v in vision)
    }
    assert vision_before
    result = compiled.train()
    assert len(result.losses) == 4 and result.losses[-1] < result.losses[0]
    for name, param in model.named_parameters():
        if name in vision_before:
            assert torch.equal(param.detach(), vision_before[name])  # the vision tower stays frozen
    assert result.adapter_path is not None and (result.adapter_path / "adapter_config.json").exists()

    processor = AutoProcessor.from_pretrained(result.output_dir)
    base = AutoModelForImageTextToText.from_pretrained(any_vlm_dir)
    tuned = PeftModel.from_pretrained(base, str(result.adapter_path)).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[[sample_image("red")]], return_tensors="pt")
    with torch.no_grad():
        generated = tuned.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_packing_is_refused_for_vision_rows_with_the_reason(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = write_vision_dataset(tmp_path / "data", 2)
    recipe = recipe_for(tiny_vlm_dir, data, tmp_path / "out", mode="all").packing("bfd")
    with pytest.raises(RecipeError, match=r"images and their tokens\s+would no longer match"):
        recipe.compile()


def test_inspect_shows_image_placeholders_and_image_token_counts(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = write_vision_dataset(tmp_path / "data", 3)
    recipe = recipe_for(tiny_vlm_dir, data, tmp_path / "out", mode="assistant_only")
    report = recipe.inspect(rows=2)
    text = str(report)
    assert "<image>" * IMAGE_TOKENS_PER_IMAGE in report.rows[0].text
    assert f"row 0: 1 images, {IMAGE_TOKENS_PER_IMAGE} image tokens" in text
    assert f"image tokens ('<image>', never trained): {3 * IMAGE_TOKENS_PER_IMAGE}" in text
    trained = "".join(segment.text for segment in report.rows[0].segments if segment.loss)
    assert trained.strip().startswith("A ") and trained.endswith("</s> ")  # through llava_next's separator
    with pytest.raises(RecipeError, match="packing"):
        recipe.packing("bfd").inspect(rows=1)


def test_qlora_loads_the_vlm_in_4_bits_and_trains(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes", reason="the quantization extra is not installed")
    data = write_vision_dataset(tmp_path / "data", 4)
    recipe = recipe_for(tiny_vlm_dir, data, tmp_path / "out", mode="assistant_only").quantize("4bit")
    compiled = recipe.training(max_steps=2, per_device_train_batch_size=2).compile()
    model: Any = compiled.trainer.model
    assert model.base_model.model.is_loaded_in_4bit
    assert len(compiled.train().losses) == 2


def test_explain_says_the_model_is_a_vision_language_model(tiny_vlm_dir: Path, tiny_model_dir: Path) -> None:
    assert "vision-language model" in SFTRecipe().model(str(tiny_vlm_dir)).explain()
    assert "vision-language model" not in SFTRecipe().model(str(tiny_model_dir)).explain()


def test_a_template_with_generation_markers_trains_the_same_answers(
    tiny_vlm_dir: Path, tmp_path: Path
) -> None:
    # The kit's masks need no {% generation %} markers, and a template that has them (TRL's twin, named
    # with .chat_template) trains the same answers: the markers are just text the template skips.
    data = write_vision_dataset(tmp_path / "data", 2)
    recipe = recipe_for(tiny_vlm_dir, data, tmp_path / "out", mode="assistant_only")
    texts = []
    for template in ("llava_next", "llava_next_training"):
        compiled = recipe.chat_template(template).compile()
        trainer: Any = compiled.trainer
        batch = _batch(trainer.data_collator, [trainer.train_dataset[0]])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        texts.append(trainer.processing_class.tokenizer.decode(ids[labels != -100]))
    assert texts[0] == texts[1] and texts[0].strip().startswith("A ")


def test_eval_holds_out_vision_rows_or_reads_a_separate_set_and_the_trainer_evaluates(
    tiny_vlm_dir: Path, tmp_path: Path
) -> None:
    data = write_vision_dataset(tmp_path / "data", 8)
    held = recipe_for(tiny_vlm_dir, data, tmp_path / "held", mode="assistant_only")
    held = held.dataset(str(data), eval=0.25).training(eval_strategy="steps", eval_steps=2)
    compiled = held.compile()
    trainer: Any = compiled.trainer
    assert len(trainer.train_dataset) == 6 and len(trainer.eval_dataset) == 2
    whole: Any = recipe_for(tiny_vlm_dir, data, tmp_path / "whole", mode="all").compile().trainer
    everything = Counter(str(row["messages"]) for row in whole.train_dataset)
    parts = [str(row["messages"]) for part in (trainer.train_dataset, trainer.eval_dataset) for row in part]
    assert Counter(parts) == everything  # every row in one part or the other, none in both
    assert any("2 of the 8 rows held out for evaluation" in note for note in compiled.report.notes)
    again: Any = held.compile().trainer  # the same seed holds out the same rows
    assert [str(r["messages"]) for r in again.eval_dataset] == [
        str(r["messages"]) for r in trainer.eval_dataset
    ]
    result = compiled.train()
    assert any("eval_loss" in entry for entry in trainer.state.log_history)
    assert result.losses

    other = write_vision_dataset(tmp_path / "other", 3, seed=1)
    separate = recipe_for(tiny_vlm_dir, data, tmp_path / "separate", mode="assistant_only")
    compiled = separate.dataset(str(data), eval=str(other)).compile()
    trainer = compiled.trainer
    assert len(trainer.train_dataset) == 8 and len(trainer.eval_dataset) == 3
    assert trainer.eval_dataset[0]["images"][0].size  # images read relative to the eval file
    assert any("evaluation: 3 rows" in note for note in compiled.report.notes)
