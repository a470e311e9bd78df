"""A tiny randomly initialised vision-language model, built offline, for tests of image SFT.

The model is a LLaVA (``LlavaForConditionalGeneration``: a one-layer CLIP vision tower, a projector and a
two-layer Llama language model), the processor a ``LlavaProcessor`` with a CLIP image processor that
resizes every image to 28 x 28 pixels (4 patches of 14, so 4 image tokens per image), the tiny tokenizer of
``trl_sft_kit.testing`` and TRL's bundled ``llava_next_training`` chat template (its ``{% generation %}``
markers give assistant masks). LLaVA is chosen because its processor needs neither torchvision nor a video
processor, so it builds wherever transformers does.

Example:
    >>> processor = tiny_vision_processor()  # doctest: +SKIP
    >>> model = tiny_vision_model(processor)  # doctest: +SKIP
    >>> processor.image_token, IMAGE_TOKENS_PER_IMAGE  # doctest: +SKIP
    ('<image>', 4)
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import PreTrainedModel, ProcessorMixin

__all__ = [
    "IMAGE_SIZE",
    "IMAGE_TOKENS_PER_IMAGE",
    "VISION_CHAT_TEMPLATE",
    "sample_image",
    "save_tiny_vision_model",
    "tiny_vision_model",
    "tiny_vision_processor",
    "write_vision_dataset",
]

IMAGE_SIZE = 28
"""The side, in pixels, every image is resized and cropped to."""

PATCH_SIZE = 14

IMAGE_TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2
"""How many ``<image>`` tokens the processor writes for each image."""

VISION_CHAT_TEMPLATE = "llava_next_training"
"""The TRL chat template the tiny processor renders conversations with."""

_COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def tiny_vision_processor(chat_template: str = VISION_CHAT_TEMPLATE) -> ProcessorMixin:
    """A ``LlavaProcessor``: the tiny tokenizer with ``chat_template``, and 28 x 28 pixel images."""
    from transformers import LlavaProcessor

    from trl_sft_kit.testing import tiny_tokenizer

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor as ImageProcessor  # type: ignore[assignment]
    tokenizer = tiny_tokenizer(chat_template, extra_texts=[f"A {colour} square." for colour in _COLOURS])
    images = ImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def tiny_vision_model(processor: ProcessorMixin, *, hidden_size: int = 64, seed: int = 0) -> PreTrainedModel:
    """A float32 ``LlavaForConditionalGeneration`` matching ``processor``, initialised from ``seed``."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    tokenizer: Any = processor.tokenizer
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration._from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=16,
    )
    model.eval()
    return model


def save_tiny_vision_model(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build the tiny processor and model and save both into ``path`` (loads with ``AutoProcessor``)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    processor = tiny_vision_processor()
    model = tiny_vision_model(processor, seed=seed)
    processor.save_pretrained(out)
    model.save_pretrained(out)
    return out


def sample_image(colour: str = "red", size: tuple[int, int] = (40, 32)) -> Image:
    """A plain RGB image of one of ``red``, ``green``, ``blue``, ``yellow``, with a little noise."""
    from PIL import Image as PILImage

    image = PILImage.new("RGB", size, _COLOURS[colour])
    rng = random.Random(colour)
    for _ in range(size[0]):
        image.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), (128, 128, 128))
    return image


def write_vision_dataset(folder: str | os.PathLike[str], n: int = 8, *, seed: int = 0) -> Path:
    """LLaMA-Factory's ``mllm_demo.json`` layout: ``<image>`` markers and an ``images`` list of paths.

    Writes ``n`` rows to ``folder/mllm_demo.json`` and their images to ``folder/images/`` (paths in the
    rows are relative to the data file), asking for the colour of a square; returns the data file.
    """
    out = Path(folder)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        colour = rng.choice(sorted(_COLOURS))
        name = f"images/{index}_{colour}.png"
        sample_image(colour).save(out / name)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": "<image>What colour is the square?"},
                    {"role": "assistant", "content": f"A {colour} square."},
                ],
                "images": [name],
            }
        )
    path = out / "mllm_demo.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path
