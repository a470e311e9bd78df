"""The control tokens a chat template needs in its tokenizer: found in its text, eos and bos picked."""

from __future__ import annotations

import re
from typing import Any

from trl_sft_kit.testing.chat_templates import _resolve_template

__all__ = ["template_special_tokens"]

_SPECIAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"<\|[^\s<>|]{1,48}\|>"),  # <|im_start|>, <|eot_id|>, <|"|>
    re.compile(r"<\|[^\s<>|]{1,48}>"),  # <|turn>, <|channel> (Gemma 4 openers)
    re.compile(r"<[^\s<>|]{1,48}\|>"),  # <turn|>, <channel|> (Gemma 4 closers)
    re.compile(r"<\uff5c[^\s<>\uff5c]{1,48}\uff5c>"),  # DeepSeek <\uff5cUser\uff5c> (full-width bars)
    re.compile(r"\[/?[A-Z][A-Z_]{1,30}\]"),  # [INST], [/INST]
)
_TAG_PATTERN = re.compile(r"</?[A-Za-z_][A-Za-z0-9_]{0,48}>")  # <start_of_turn>, <think>, </tool_call>
# Plain ``<tag>`` literals that are special tokens in the real model families. Other tags
# (``<think>``, ``<tool_call>``, ...) are added as ordinary (non-special) added tokens,
# like in the real Qwen / DeepSeek tokenizers: still one id each, but kept when decoding
# with ``skip_special_tokens=True``.
_SPECIAL_TAGS = frozenset(
    {
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
        "<mask>",
        "<s>",
        "</s>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<end_of_utterance>",
        "<image>",
        "<sop>",
        "<eop>",
    }
)
# End-of-turn tokens, most specific first; the first one a template emits becomes eos.
_EOS_PRIORITY: tuple[str, ...] = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<turn|>",
    "<|END_OF_TURN_TOKEN|>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
    "<|eot|>",
    "<|return|>",
    "<|end|>",
    "<end_of_utterance>",
    "</s>",
)
_DEFAULT_EOS = "<|endoftext|>"
_PAD = "<|pad|>"


def _pick_bos(tokens: set[str]) -> str:
    """BOS token of the model family whose control tokens appear in ``tokens``."""
    if "<|eot_id|>" in tokens or "<|start_header_id|>" in tokens:
        return "<|begin_of_text|>"
    if "<start_of_turn>" in tokens or "<|turn>" in tokens:
        return "<bos>"
    if "<|START_OF_TURN_TOKEN|>" in tokens:
        return "<BOS_TOKEN>"
    if any(t.startswith("<\uff5c") for t in tokens):
        return "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
    if "[INST]" in tokens:
        return "<s>"
    return "<|startoftext|>"


def template_special_tokens(chat_template: str | None) -> dict[str, Any]:
    """Work out the control tokens a chat template needs in its tokenizer.

    Scans the template text for literal control tokens (``<|...|>``, Gemma-4 style
    ``<|x>``/``<x|>``, DeepSeek full-width-bar, ``[INST]``-style and ``<tag>`` literals)
    and picks the end-of-turn token as ``eos`` and a family-appropriate ``bos`` when the
    template uses the ``bos_token`` variable.

    Args:
        chat_template: A bundled trl template name, a raw Jinja string, or ``None``.

    Returns:
        A dict with ``special`` (list of special tokens, always including ``<|endoftext|>``
        and ``<|pad|>``), ``added`` (non-special added tokens), ``eos_token``,
        ``bos_token`` (``None`` when the template doesn't use one) and ``pad_token``.
    """
    text = _resolve_template(chat_template) or ""
    found: list[str] = []
    for pattern in _SPECIAL_PATTERNS:
        found += pattern.findall(text)
    tags = _TAG_PATTERN.findall(text)
    found += [t for t in tags if t in _SPECIAL_TAGS]
    added = sorted({t for t in tags if t not in _SPECIAL_TAGS})
    found_set = set(found)
    eos = next((t for t in _EOS_PRIORITY if t in found_set), _DEFAULT_EOS)
    bos = _pick_bos(found_set) if re.search(r"\bbos_token\b", text) else None
    special: list[str] = [_PAD, _DEFAULT_EOS]
    for token in [eos, bos, *sorted(found_set)]:
        if token is not None and token not in special:
            special.append(token)
    added = [t for t in added if t not in special]
    return {"special": special, "added": added, "eos_token": eos, "bos_token": bos, "pad_token": _PAD}
