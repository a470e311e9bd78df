"""Renderings tokenized in a batch with their character offsets, the fast tokenizer's own way.

``tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)`` runs the Rust tokenizer's
``encode_batch`` and then converts every encoding into Python lists of every field (attention mask, type
ids, ...), a cost as large as the tokenization. ``encode_with_offsets`` calls ``encode_batch`` itself and
reads only the ids and offsets, when that is provably the same call: a transformers ``TokenizersBackend``
whose encoding step is not overridden, with no truncation or padding set on its backend and special tokens
split as the tokenizer says. Any other tokenizer goes through ``tokenizer(...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["encode_with_offsets"]


def encode_with_offsets(
    tokenizer: Any, texts: Sequence[str]
) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """The token ids and character offsets of each text, without special tokens added."""
    backend = _plain_backend(tokenizer)
    if backend is None:
        encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), [list(map(tuple, row)) for row in encoded["offset_mapping"]]
    encodings = backend.encode_batch(list(texts), add_special_tokens=False)
    return [encoding.ids for encoding in encodings], [encoding.offsets for encoding in encodings]


def _plain_backend(tokenizer: Any) -> Any:
    """The Rust tokenizer ``tokenizer(...)`` would call as it is, or None where it would do more."""
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:  # pragma: no cover - another transformers layout
        return None
    if not isinstance(tokenizer, TokenizersBackend):
        return None
    cls = type(tokenizer)
    if any(
        getattr(cls, name, None) is not getattr(TokenizersBackend, name, None)
        for name in ("__call__", "_encode_plus", "_call_one", "encode_plus")
    ):
        return None
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or backend.truncation is not None or backend.padding is not None:
        return None
    if bool(backend.encode_special_tokens) != bool(getattr(tokenizer, "split_special_tokens", False)):
        return None
    return backend
