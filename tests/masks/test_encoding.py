"""``encode_with_offsets`` gives the ids and offsets ``tokenizer(texts, add_special_tokens=False,
return_offsets_mapping=True)`` gives, and goes through the tokenizer itself where its backend is set up for
something else."""

from __future__ import annotations

import pytest

from trl_sft_kit.data.masks.encoding import _plain_backend, encode_with_offsets
from trl_sft_kit.testing import tiny_tokenizer

TEXTS = [
    "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\nHi! How are you?<|im_end|>\n",
    "",
    "  spaces   and\ttabs\n\n",
    "unicode: naïve café — 東京 🎉",
    "<|im_end|><|im_end|>no space<|im_start|>",
]


def _reference(tokenizer, texts):  # type: ignore[no-untyped-def]
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [list(ids) for ids in encoded["input_ids"]], [
        [tuple(pair) for pair in row] for row in encoded["offset_mapping"]
    ]


@pytest.mark.parametrize("template", ["qwen2_5", "llama3_2", "gemma3"])
def test_same_ids_and_offsets_as_the_tokenizer(template: str) -> None:
    tokenizer = tiny_tokenizer(template)
    assert _plain_backend(tokenizer) is not None  # the fast path is the one tested
    ids, offsets = encode_with_offsets(tokenizer, TEXTS)
    assert (ids, [list(map(tuple, row)) for row in offsets]) == _reference(tokenizer, TEXTS)


def test_split_special_tokens_goes_through_the_tokenizer() -> None:
    tokenizer = tiny_tokenizer("qwen2_5")
    tokenizer.split_special_tokens = True
    assert _plain_backend(tokenizer) is None
    ids, _ = encode_with_offsets(tokenizer, TEXTS[:1])
    assert ids == _reference(tokenizer, TEXTS[:1])[0]
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") not in ids[0]


def test_a_backend_left_truncating_goes_through_the_tokenizer() -> None:
    tokenizer = tiny_tokenizer("qwen2_5")
    tokenizer._tokenizer.enable_truncation(max_length=3)
    assert _plain_backend(tokenizer) is None
    ids, _ = encode_with_offsets(tokenizer, TEXTS[:1])
    assert len(ids[0]) > 3  # the tokenizer call resets the backend: nothing cut
