"""Tiny causal LMs matching a tiny tokenizer: built in memory, saved to a folder, or cached once per template.

``torch`` and ``transformers`` are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.testing.chat_templates import _is_raw_template, _resolve_template
from trl_sft_kit.testing.tiny_tokenizers import tiny_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["cached_tiny_model_dir", "save_tiny_model", "tiny_model"]


def tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> PreTrainedModel:
    """Build a randomly initialised tiny Llama-architecture causal LM matching ``tokenizer``.

    Initialisation is deterministic for a given ``seed`` and does not disturb the
    caller's global torch RNG state. Llama is used rather than Qwen2 because
    transformers 5 reloads a saved ``qwen2`` folder with ``Qwen2Tokenizer``, which swaps
    in its own normaliser/pre-tokeniser, whereas a ``llama`` folder reloads the saved
    ``tokenizer.json`` verbatim.

    Args:
        tokenizer: Tokenizer whose vocabulary (``len(tokenizer)``) and special token ids
            the model is configured with.
        hidden_size: Model width; must be divisible by ``num_heads``.
        num_layers: Number of decoder layers.
        num_heads: Number of attention (and key/value) heads.
        seed: Seed for the weight initialisation.

    Returns:
        A float32 ``LlamaForCausalLM`` (tied embeddings, 2048 positions, SDPA attention)
        whose ``config`` and ``generation_config`` carry the tokenizer's
        bos/eos/pad token ids.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
        except (ValueError, ImportError):  # pragma: no cover - sdpa unavailable
            model = LlamaForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    model.eval()
    return model


def save_tiny_model(
    path: str | os.PathLike[str],
    *,
    chat_template: str | None = "qwen2_5",
    **model_kwargs: Any,
) -> Path:
    """Build a tiny tokenizer + model and save both with ``save_pretrained`` into ``path``.

    The folder then loads fully offline with ``AutoTokenizer.from_pretrained(path)`` and
    ``AutoModelForCausalLM.from_pretrained(path)``.

    Args:
        path: Destination folder (created if missing).
        chat_template: Passed to ``tiny_tokenizer``.
        **model_kwargs: Passed to ``tiny_model`` (``hidden_size``, ``num_layers``,
            ``num_heads``, ``seed``).

    Returns:
        The folder, as a ``Path``.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(chat_template)
    model = tiny_model(tokenizer, **model_kwargs)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


_CACHE_VERSION = "v1"  # bump when the tiny tokenizer/model recipe changes
_COMPLETE_MARKER = ".trl_sft_kit_complete"


def _cache_key(chat_template: str | None) -> str:
    if chat_template is None:
        return "none"
    if _is_raw_template(chat_template):
        return "custom-" + hashlib.sha256(chat_template.encode("utf-8")).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", chat_template)


def _fingerprint(template: str | None) -> str:
    """Identify what a cached folder was built from (recipe version + exact template text)."""
    digest = hashlib.sha256((template or "").encode("utf-8")).hexdigest()[:16]
    return f"{_CACHE_VERSION}:{digest}"


def _is_complete(folder: Path, fingerprint: str) -> bool:
    marker = folder / _COMPLETE_MARKER
    try:
        return marker.read_text(encoding="utf-8") == fingerprint and (folder / "config.json").is_file()
    except OSError:
        return False


def cached_tiny_model_dir(chat_template: str | None = "qwen2_5") -> Path:
    """Return a folder holding a saved tiny model + tokenizer, building it only once.

    The folder is ``tiny-<template>-v1`` in the kit's cache folder (``$TRL_SFT_KIT_CACHE``, default
    ``$HF_HOME/trl_sft_kit``: ``trl_sft_kit.cache_root``), beside the preprocessing cache's ``data/``,
    which ``clear_cache()`` empties without touching these. It is built in a temporary sibling folder
    and moved into place atomically, so concurrent callers never see a half-written model; it is rebuilt
    when the installed trl ships a different version of the template.

    Args:
        chat_template: Bundled trl template name, raw Jinja string (keyed by its hash)
            or ``None``.

    Returns:
        Path of the complete model folder.

    Raises:
        ValueError: If ``chat_template`` names an unknown bundled template.
    """
    from trl_sft_kit.cache_root import kit_cache_root

    root = kit_cache_root()
    target = root / f"tiny-{_cache_key(chat_template)}-{_CACHE_VERSION}"
    fingerprint = _fingerprint(_resolve_template(chat_template))  # also rejects unknown names
    if _is_complete(target, fingerprint):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp creates 0700; the cache may be shared
        save_tiny_model(tmp, chat_template=chat_template)
        (tmp / _COMPLETE_MARKER).write_text(fingerprint, encoding="utf-8")
        if target.exists() and not _is_complete(target, fingerprint):
            # interrupted build, or built from another version of the trl template
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target, fingerprint):  # a concurrent caller may have won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
