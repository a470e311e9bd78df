"""The kit's own masks on vision rows: on every bundled vision template, against TRL's twins, end to end.

The kit's labels on a vision template WITHOUT ``{% generation %}`` markers are compared token for token with
TRL's ``assistant_masks`` on its ``*_training`` twin: first on the rendering alone (one placeholder per
image, every bundled vision template), then through each tiny processor, where each placeholder grows into
the image's tokens. The one difference allowed is listed per template and checked precisely.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data.masks import IGNORE_INDEX, tokenize_conversation
from trl_sft_kit.data.masks.templates import VISION_TEMPLATES
from trl_sft_kit.errors import RecipeError, RowError
from trl_sft_kit.testing import bundled_chat_template, bundled_chat_template_names, tiny_tokenizer
from trl_sft_kit.testing.vision import (
    IMAGE_TOKENS_PER_IMAGE,
    sample_image,
    tiny_vision_processor,
    write_vision_dataset,
)
from trl_sft_kit.vision.compile import VisionCollator, media_tokens, vision_collator
from trl_sft_kit.vision.masks import ConversationMasks, align_labels

IMAGE = {"type": "image"}


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


CONVERSATION = [
    {"role": "user", "content": [IMAGE, text("What colour is the square?")]},
    {"role": "assistant", "content": [text("A red square.")]},
    {"role": "user", "content": [text("And this one?"), IMAGE]},
    {"role": "assistant", "content": [text("A blue square.")]},
]

#: Where the kit's labels differ from TRL's twin: "separator", the kit also trains the whitespace the
#: template writes after the end-of-turn token (llava_next's '</s> '), which the twin moved out.
DIFFERENCES = {"llava_next": {"separator"}}


def kinds_of_difference(tokenizer: Any, ids: list[int], kit: list[int], trl_mask: list[int]) -> set[str]:
    """The kinds of difference between the kit's labels and TRL's mask; raises on any other."""
    kit_at = {k for k, label in enumerate(kit) if label != IGNORE_INDEX}
    trl_at = {k for k, bit in enumerate(trl_mask) if bit}
    assert not trl_at - kit_at, f"TRL trains {tokenizer.decode([ids[k] for k in sorted(trl_at - kit_at)])!r}"
    kinds = set()
    for k in sorted(kit_at - trl_at):
        assert tokenizer.decode([ids[k]]).strip() == "" and k - 1 in trl_at, tokenizer.decode(ids)
        kinds.add("separator")
    return kinds


def test_every_bundled_vision_template_is_covered() -> None:
    names = bundled_chat_template_names()
    assert set(names) >= VISION_TEMPLATES
    twinned = {name for name in VISION_TEMPLATES if f"{name}_training" in names}
    assert twinned == {"idefics3", "llava_next", "qwen2_5_vl", "qwen3_vl", "smolvlm"}


@pytest.mark.parametrize("name", sorted(VISION_TEMPLATES))
def test_masks_on_each_vision_template_match_trl_twin(name: str) -> None:
    tokenizer = tiny_tokenizer(name)
    masked = tokenize_conversation(tokenizer, CONVERSATION)
    assert masked.input_ids == tokenizer.apply_chat_template(CONVERSATION, return_dict=True)["input_ids"]
    assert [span.message_index for span in masked.spans] == [1, 3]
    trained = tokenizer.decode(masked.trained_ids())
    assert "colour" not in trained and "this one" not in trained
    assert "A red square." in trained and "A blue square." in trained
    twin = f"{name}_training"
    if twin not in bundled_chat_template_names():  # lfm2_2_5_vl: TRL ships no twin
        assert masked.end_of_turn_trained
        return
    trl = tokenizer.apply_chat_template(
        CONVERSATION,
        chat_template=bundled_chat_template(twin),
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    assert trl["input_ids"] == masked.input_ids
    kinds = kinds_of_difference(tokenizer, masked.input_ids, masked.labels, trl["assistant_masks"])
    assert kinds == DIFFERENCES.get(name, set())


@pytest.mark.parametrize(("architecture", "plain"), [("llava", "llava_next"), ("idefics3", "smolvlm")])
def test_through_the_processor_the_kit_labels_match_trl_on_its_twin(architecture: str, plain: str) -> None:
    """Placeholders expanded into image tokens: the kit's labels on the plain template equal TRL's
    collator with ``assistant_only_loss`` on the twin, image tokens never trained."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    row = {"messages": CONVERSATION, "images": [sample_image("red"), sample_image("blue")]}
    processor = tiny_vision_processor(plain, architecture=architecture)
    recipe = SFTRecipe().loss("assistant_only")
    ours = vision_collator(recipe, processor, None)([copy.deepcopy(row)])
    twin = tiny_vision_processor(f"{plain}_training", architecture=architecture)
    theirs = DataCollatorForVisionLanguageModeling(processor=twin, assistant_only_loss=True)(
        [copy.deepcopy(row)]
    )
    ids = ours["input_ids"][0].tolist()
    assert ids == theirs["input_ids"][0].tolist()
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    assert ids.count(image_id) == 2 * IMAGE_TOKENS_PER_IMAGE
    kit = ours["labels"][0].tolist()
    mask = [int(label != IGNORE_INDEX) for label in theirs["labels"][0].tolist()]
    kinds = kinds_of_difference(processor.tokenizer, ids, kit, mask)
    assert kinds == DIFFERENCES.get(plain, set())
    media = set(media_tokens(processor))
    assert all(label == IGNORE_INDEX for token, label in zip(ids, kit, strict=True) if token in media)


def test_align_labels_places_trained_tokens_exactly_or_refuses() -> None:
    media = frozenset({9})
    # a placeholder grown into three image tokens; the answer keeps its labels
    assert align_labels([1, 9, 4, 5], [-100, -100, 4, 5], [1, 9, 9, 9, 4, 5], media) == [-100] * 4 + [4, 5]
    # cut at the end by max_length: the labels of what is left
    assert align_labels([1, 9, 4, 5], [-100, -100, 4, 5], [1, 9, 9, 4], media) == [-100, -100, -100, 4]
    with pytest.raises(ValueError, match="where the loss is trained"):  # a trained token rendered otherwise
        align_labels([1, 9, 4, 5], [-100, -100, 4, 5], [1, 9, 9, 7, 5], media)
    with pytest.raises(ValueError, match="neither in the chat template's rendering nor an image's"):
        align_labels([1, 2, 9, 4], [-100, -100, -100, 4], [1, 2, 3, 3, 2, 9, 4], media)


def test_a_processor_that_renders_otherwise_is_a_row_error_naming_the_row() -> None:
    processor = tiny_vision_processor("llava_next")
    # the masks' template ends an answer otherwise than the processor's: its trained tokens are not there
    other = bundled_chat_template("llava_next").replace("'</s> '", "'.</s> '")
    masks = ConversationMasks(processor.tokenizer, other, frozenset(media_tokens(processor)))
    collator = VisionCollator(vision_collator(SFTRecipe(), processor, None).inner, None, (), masks)
    row = {
        "messages": CONVERSATION[:2],
        "images": [sample_image("red")],
        "source_row": {"path": "data.json", "row": 3, "line": None},
    }
    with pytest.raises(RowError, match=r"data\.json, row 3, field 'messages': the processor tokenized"):
        collator([row])


def _recipe(model: Path, data: Path, out: Path) -> SFTRecipe:
    return (
        SFTRecipe()
        .model(str(model))
        .dataset(str(data))
        .lora(r=4)
        .training(output_dir=str(out), max_steps=2, per_device_train_batch_size=2, save_strategy="no", seed=0)
    )


def _two_turn_rows(folder: Path, n: int, *, image_after: int = 0) -> Path:
    """``n`` rows of two turns, the image in the first user turn, or with ``image_after`` words in the first
    user turn and the image in the second."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        sample_image("red").save(folder / "images" / f"{index}.png")
        first, second = "<image>What colour is it?", "Are you sure?"
        if image_after:
            first, second = "word " * image_after + "What colour is it?", "<image>Are you sure?"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": first},
                    {"role": "assistant", "content": "A red square."},
                    {"role": "user", "content": second},
                    {"role": "assistant", "content": "Yes, red."},
                ],
                "images": [f"images/{index}.png"],
            }
        )
    path = folder / "data.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _trained_text(compiled: Any, index: int = 0) -> str:
    trainer = compiled.trainer
    batch = trainer.data_collator([trainer.train_dataset[index]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    return str(trainer.processing_class.tokenizer.decode(ids[labels != IGNORE_INDEX]))


def test_the_default_loss_trains_the_answers_on_the_models_own_template(
    any_vlm_dir: Path, tmp_path: Path
) -> None:
    """``loss("auto")``, as for text conversations: the assistant's turns, on a template without
    ``{% generation %}`` markers (the ones the tiny models ship, as real ones do)."""
    from transformers import AutoProcessor

    template = AutoProcessor.from_pretrained(any_vlm_dir).chat_template
    assert not re.search(r"\{%-?\s*generation\s*-?%\}", template)
    compiled = _recipe(any_vlm_dir, _two_turn_rows(tmp_path / "data", 4), tmp_path / "out").compile()
    trained = _trained_text(compiled)
    assert "A red square." in trained and "Yes, red." in trained
    assert "colour" not in trained and "sure" not in trained
    assert compiled.tokenization.loss == "assistant_only"
    assert "assistant" in compiled.tokenization.summary()
    assert compiled.train().losses


def test_turns_last_trains_the_last_answer_only(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    recipe = _recipe(tiny_vlm_dir, _two_turn_rows(tmp_path / "data", 2), tmp_path / "out")
    trained = _trained_text(recipe.loss("assistant_only", turns="last").compile())
    assert "Yes, red." in trained and "A red square." not in trained


def test_max_length_truncates_and_counts_and_never_cuts_an_image(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = _two_turn_rows(tmp_path / "data", 3)
    whole = _recipe(tiny_vlm_dir, data, tmp_path / "whole").compile().tokenization
    assert whole.rows_truncated == 0
    length = whole.tokens // 3
    cut = _recipe(tiny_vlm_dir, data, tmp_path / "cut").training(max_length=length - 3).compile()
    report = cut.tokenization
    assert (report.rows_truncated, report.tokens_truncated) == (3, 9)
    assert report.tokens == 3 * (length - 3)
    assert "3 rows truncated, 9 tokens cut" in report.summary()
    batch = cut.trainer.data_collator([cut.trainer.train_dataset[0]])
    assert batch["input_ids"].shape[1] == length - 3  # training cuts where the report says

    late = _two_turn_rows(tmp_path / "late", 4, image_after=80)
    recipe = _recipe(tiny_vlm_dir, late, tmp_path / "late-out").training(max_length=length)
    with pytest.raises(RowError, match=rf"data\.json, row 0, field 'images': .*run past max_length {length}"):
        recipe.compile()
    mixed = json.loads(late.read_text())[:1] + json.loads(data.read_text())
    (tmp_path / "late" / "mixed.json").write_text(json.dumps(mixed), encoding="utf-8")
    mixed_recipe = _recipe(tiny_vlm_dir, late, tmp_path / "mixed-out").training(max_length=length)
    kept = mixed_recipe.dataset(str(tmp_path / "late" / "mixed.json"), on_bad_rows="skip").compile()
    assert kept.tokenization.rows_out == 3 and len(kept.trainer.train_dataset) == 3
    assert kept.tokenization.rows_truncated == 0
    (skipped,) = kept.tokenization.skipped
    assert "mixed.json, row 0" in str(skipped) and "run past max_length" in str(skipped)
    assert "skipped" in kept.tokenization.summary()


def test_write_vision_dataset_rows_train_their_answers(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = write_vision_dataset(tmp_path / "data", 2)
    compiled = _recipe(tiny_vlm_dir, data, tmp_path / "out").compile()
    answer = compiled.trainer.train_dataset[0]["messages"][1]["content"][0]["text"]
    assert _trained_text(compiled).strip().startswith(answer)


def test_a_turn_marked_not_to_train_is_rendered_but_not_trained(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = _two_turn_rows(tmp_path / "data", 2)
    rows = json.loads(data.read_text())
    rows[0]["messages"][1]["train"] = False
    rows[1]["messages"][1]["weight"] = 0
    rows[1]["messages"][3]["weight"] = 0  # nothing left to train in this row: dropped and counted
    data.write_text(json.dumps(rows), encoding="utf-8")
    compiled = _recipe(tiny_vlm_dir, data, tmp_path / "out").compile()
    trained = _trained_text(compiled)
    assert "Yes, red." in trained and "A red square." not in trained
    assert "A red square." in str(compiled.trainer.train_dataset[0]["messages"])  # still rendered
    assert compiled.tokenization.rows_out == 1 and compiled.tokenization.rows_without_trained_tokens == 1


def _prompt_completion_rows(folder: Path, n: int) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        sample_image("blue").save(folder / "images" / f"{index}.png")
        rows.append(
            {
                "prompt": [
                    {"role": "user", "content": "Hello."},
                    {"role": "assistant", "content": "Hi there."},
                    {"role": "user", "content": [{"type": "image"}, text("What colour is it?")]},
                ],
                "completion": [{"role": "assistant", "content": "A blue square."}],
                "images": [f"images/{index}.png"],
            }
        )
    path = folder / "pc.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_prompt_completion_vision_rows_train_the_completion_only(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    data = _prompt_completion_rows(tmp_path / "data", 2)
    base = _recipe(tiny_vlm_dir, data, tmp_path / "out")
    for recipe in (base, base.loss("completion_only"), base.loss("trl")):
        compiled = recipe.compile()
        assert compiled.report.canonical == "prompt_completion"
        assert compiled.tokenization.loss == "completion_only"
        trained = _trained_text(compiled)
        assert "A blue square." in trained and "Hi there." not in trained and "colour" not in trained
    everything = _trained_text(base.loss("all").compile())
    assert "Hi there." in everything and "colour" in everything
    assert base.compile().train().losses

    with pytest.raises(RecipeError, match="completion_only"):  # conversations have no completion
        _recipe(tiny_vlm_dir, _two_turn_rows(tmp_path / "chat", 2), tmp_path / "c").loss(
            "completion_only"
        ).compile()
    strings = [{"prompt": "<image>What colour?", "completion": "Blue.", "images": ["images/0.png"]}]
    (tmp_path / "data" / "strings.json").write_text(json.dumps(strings), encoding="utf-8")
    with pytest.raises(RowError, match=r"strings\.json, row 0, field 'prompt': .*must be conversational"):
        _recipe(tiny_vlm_dir, tmp_path / "data" / "strings.json", tmp_path / "s").compile()
