"""Tiny randomly initialised vision-language models, built offline, for tests of image SFT.

Two architectures, as ``architecture=``: ``"llava"`` (the default) and ``"idefics3"`` (SmolVLM's: a
one-layer SigLIP-style tower, a pixel-shuffle connector and a two-layer Llama, 56-pixel images of 4 image
tokens, TRL's ``smolvlm`` template).

The LLaVA is a ``LlavaForConditionalGeneration`` (a one-layer CLIP vision tower, a projector and a
two-layer Llama language model); the processor a ``LlavaProcessor`` with a CLIP image processor that
resizes every image to 28 x 28 pixels (4 patches of 14, so 4 image tokens per image), the tiny tokenizer of
``trl_sft_kit.testing`` and TRL's bundled ``llava_next`` chat template. Both templates are the plain ones,
without ``{% generation %}`` markers, as the models ship them: the kit's own masks find the assistant's
turns; pass ``chat_template="llava_next_training"`` (or ``"smolvlm_training"``) for TRL's twins. LLaVA is
chosen because its processor needs neither torchvision nor a video processor, so it builds wherever
transformers does.

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
    "ARCHITECTURES",
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

VISION_CHAT_TEMPLATE = "llava_next"
"""The TRL chat template the tiny LLaVA processor renders conversations with."""

ARCHITECTURES: dict[str, str] = {"llava": VISION_CHAT_TEMPLATE, "idefics3": "smolvlm"}
"""The tiny architectures, each with the TRL chat template its processor renders with."""

_IDEFICS3_IMAGE_SIZE = 56
_IDEFICS3_TOKENS = ("<fake_token_around_image>", "<global-img>")

_COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def tiny_vision_processor(chat_template: str | None = None, *, architecture: str = "llava") -> ProcessorMixin:
    """The tiny processor of ``architecture`` (see the module docstring), ``chat_template`` or its own.

    Raises:
        ValueError: an unknown architecture.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)} (got {architecture!r})")
    template = chat_template or ARCHITECTURES[architecture]
    if architecture == "idefics3":
        return _idefics3_processor(template)
    return _llava_processor(template)


def _idefics3_processor(chat_template: str) -> ProcessorMixin:
    from transformers import Idefics3ImageProcessorPil, Idefics3Processor

    from trl_sft_kit.testing.tiny_tokenizers import tiny_tokenizer

    tokenizer = tiny_tokenizer(chat_template, extra_texts=[f"A {colour} square." for colour in _COLOURS])
    tokenizer.add_tokens(list(_IDEFICS3_TOKENS), special_tokens=True)
    edge = {"longest_edge": _IDEFICS3_IMAGE_SIZE}
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size=edge, max_image_size=edge)
    return Idefics3Processor(
        image_processor=images,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
        image_seq_len=IMAGE_TOKENS_PER_IMAGE,
    )


def _llava_processor(chat_template: str) -> ProcessorMixin:
    from transformers import LlavaProcessor

    from trl_sft_kit.testing.tiny_tokenizers import tiny_tokenizer

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
    """A float32 LLaVA or Idefics3 (as ``processor`` is) matching ``processor``, initialised from ``seed``."""
    import torch
    from transformers import (
        GenerationConfig,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3VisionConfig,
        LlamaConfig,
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
    model_class: Any
    config: Any
    if type(processor).__name__ == "Idefics3Processor":
        model_class = Idefics3ForConditionalGeneration
        config = Idefics3Config(
            text_config=text,
            vision_config=Idefics3VisionConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=_IDEFICS3_IMAGE_SIZE,
                patch_size=PATCH_SIZE,
            ),
            scale_factor=2,
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
            tie_word_embeddings=True,
        )
    else:
        model_class = LlavaForConditionalGeneration
        config = _llava_config(text, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class._from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=16,
    )
    model.eval()
    return model


def _llava_config(text: Any, tokenizer: Any) -> Any:
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )


def save_tiny_vision_model(
    path: str | os.PathLike[str], *, architecture: str = "llava", seed: int = 0
) -> Path:
    """Build the tiny processor and model of ``architecture`` and save both into ``path``.

    The folder loads with ``AutoProcessor`` and ``AutoModelForImageTextToText``.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    processor = tiny_vision_processor(architecture=architecture)
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
