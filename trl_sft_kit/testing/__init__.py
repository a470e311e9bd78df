"""Offline test helpers: tiny tokenizers, tiny causal LMs and sample SFT datasets.

Everything in this package works without network access and runs in seconds on a
laptop CPU. It is used by this repository's tests, by the ``trl-sft-kit demo``
command and is meant to be reused by downstream projects' tests.

Heavy libraries (``torch``, ``transformers``, ``tokenizers``) are imported lazily
inside the functions that need them, so ``import trl_sft_kit.testing`` stays cheap.

Modules: ``sample_data`` (``FORMATS``, ``QA_PAIRS``, ``sample_rows``, ``write_sample_dataset``),
``chat_templates`` (the templates bundled with trl), ``special_tokens`` (``template_special_tokens``),
``tiny_tokenizers`` (``tiny_tokenizer``), ``tiny_models`` (``tiny_model``, ``save_tiny_model``,
``cached_tiny_model_dir``) and ``vision`` (a tiny vision-language model and image data);
every name is re-exported here.

``trl_sft_kit.testing.strategies`` holds hypothesis strategies for rows of every
built-in dataset format and for junk; import it explicitly (it imports hypothesis).
"""

from trl_sft_kit.testing.chat_templates import bundled_chat_template, bundled_chat_template_names
from trl_sft_kit.testing.sample_data import FORMATS, QA_PAIRS, sample_rows, write_sample_dataset
from trl_sft_kit.testing.special_tokens import template_special_tokens
from trl_sft_kit.testing.tiny_models import cached_tiny_model_dir, save_tiny_model, tiny_model
from trl_sft_kit.testing.tiny_tokenizers import tiny_tokenizer
from trl_sft_kit.testing.vision import (
    sample_image,
    save_tiny_vision_model,
    tiny_vision_model,
    tiny_vision_processor,
    write_vision_dataset,
)

__all__ = [
    "FORMATS",
    "QA_PAIRS",
    "bundled_chat_template",
    "bundled_chat_template_names",
    "cached_tiny_model_dir",
    "sample_image",
    "sample_rows",
    "save_tiny_model",
    "save_tiny_vision_model",
    "template_special_tokens",
    "tiny_model",
    "tiny_tokenizer",
    "tiny_vision_model",
    "tiny_vision_processor",
    "write_sample_dataset",
    "write_vision_dataset",
]
