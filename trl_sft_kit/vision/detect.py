"""Whether a model is a vision-language model, read from its ``config.json`` without loading anything."""

from __future__ import annotations

import json
from pathlib import Path

from trl_sft_kit.specs import ModelSpec

__all__ = ["explain_vision", "has_local_vision_config"]


def has_local_vision_config(spec: ModelSpec) -> bool | None:
    """True or False for a loaded model or a local folder (its config has a ``vision_config``), else None.

    >>> has_local_vision_config(ModelSpec("no/such-model-here"))
    """
    if spec.is_loaded:
        return getattr(spec.source.config, "vision_config", None) is not None
    config = Path(str(spec.source)).expanduser() / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return isinstance(data, dict) and data.get("vision_config") is not None


def explain_vision(spec: ModelSpec) -> list[str]:
    """``explain()``'s line for a vision-language model (none for a text model or one not known yet)."""
    if not has_local_vision_config(spec):
        return []
    return [
        "vision-language model (its config has a vision_config): rows keep their images (TRL's content parts "
        "+ 'images'), AutoModelForImageTextToText with its processor, TRL's vision collator with image "
        "tokens never trained, LoRA 'all-linear' on the language model only; packing refused"
    ]
