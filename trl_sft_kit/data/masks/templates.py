"""Which of the chat templates bundled with TRL work on text alone."""

from __future__ import annotations

import re

#: Chat templates bundled with TRL that need images (left out of ``text_only_templates``).
VISION_TEMPLATES = frozenset(
    {"idefics3", "lfm2_2_5_vl", "llava_next", "qwen2_5_vl", "qwen3_vl", "smolvlm"},
)
_VISION_NAME = re.compile(r"(?:^|_)vl(?:$|_)|vlm|idefics|llava")


def text_only_templates() -> tuple[str, ...]:
    """Names of the chat templates bundled with TRL that work on text alone.

    The stems of ``trl/chat_templates/*.jinja`` minus the ``*_training`` twins and the vision templates
    (``VISION_TEMPLATES``, and any name that looks like one: ``*_vl*``, ``*vlm*``, ``idefics*``,
    ``llava*``).

    Returns:
        Sorted template names, e.g. ``("cohere", "cohere2", ..., "qwen3_8", "qwen3_instruct_2507")``.
    """
    from trl_sft_kit.testing import bundled_chat_template_names

    return tuple(
        name
        for name in bundled_chat_template_names()
        if not name.endswith("_training") and name not in VISION_TEMPLATES and not _VISION_NAME.search(name)
    )
