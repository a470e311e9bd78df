"""Property tests: random conversations on representative templates.

Over generated conversations (random unicode, whitespace-heavy contents, 1-4 turns, optional system):
nothing outside an assistant turn is trained (TRL's ``{% generation %}`` twin says where the turns are),
every reply is inside its trained span, the ids are ``apply_chat_template``'s, and results are
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trl_sft_kit.data.masks import IGNORE_INDEX, tokenize_conversation
from trl_sft_kit.testing import bundled_chat_template

#: Template -> (whether it takes a system message, whether it trims contents, the header TRL also trains).
TEMPLATES = {
    "qwen2_5": (True, False, "\n"),
    "llama3": (True, True, ""),
    "phi3": (True, False, ""),
    "gemma": (False, True, ""),
}

words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24).filter(str.strip)
padding = st.sampled_from(["", " ", "\n", "  ", "\n\n", " \t\n "])
contents = st.builds(lambda before, text, after: before + text + after, padding, words, padding)


@st.composite
def conversations(draw: st.DrawFn, system: bool) -> list[dict[str, str]]:
    messages = []
    if system and draw(st.booleans()):
        messages.append({"role": "system", "content": draw(contents)})
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(contents)})
        messages.append({"role": "assistant", "content": draw(contents)})
    if draw(st.booleans()):
        messages.append({"role": "user", "content": draw(contents)})
    return messages


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_random_conversations(name: str, tokenizer_for: Callable[[str], Any]) -> None:
    tokenizer = tokenizer_for(name)
    system, trims, extra_header = TEMPLATES[name]
    twin = bundled_chat_template(f"{name}_training")

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(conversations(system))
    def check(messages: list[dict[str, str]]) -> None:
        masked = tokenize_conversation(tokenizer, messages)
        assert tokenize_conversation(tokenizer, messages) == masked  # deterministic
        trl = tokenizer.apply_chat_template(
            messages, chat_template=twin, return_dict=True, return_assistant_tokens_mask=True
        )
        assert masked.input_ids == tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"]
        assert masked.input_ids == trl["input_ids"]
        trained = {k for k, label in enumerate(masked.labels) if label != IGNORE_INDEX}
        in_turns = {k for k, bit in enumerate(trl["assistant_masks"]) if bit}
        assert trained <= in_turns  # -100 everywhere outside the assistant turns
        for k in in_turns - trained:  # qwen2_5's twin also trains the '\n' ending the header
            assert extra_header and tokenizer.decode([masked.input_ids[k]]) == extra_header
        replies = [(i, m["content"]) for i, m in enumerate(messages) if m["role"] == "assistant"]
        assert [span.message_index for span in masked.spans] == [i for i, _ in replies]
        for span, (_, content) in zip(masked.spans, replies, strict=True):
            text = tokenizer.decode(masked.input_ids[span.start : span.end])
            assert (content.strip() if trims else content) in text
        assert masked.end_of_turn_trained

    check()
