"""The kit renders a conversation exactly as ``apply_chat_template(tokenize=False)`` does, on every template.

The masks render each conversation several times; the kit resolves the template and its variables once
per row and renders through transformers' ``render_jinja_template`` directly. These tests hold that this
gives the very text ``apply_chat_template`` gives, on every bundled template (training twins included),
with and without the generation prompt, with tools, reasoning and ``None`` values, and that a row asking
for the same rendering twice renders it once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_trl_parity import CONVERSATIONS, TOOLS

from trl_sft_kit.data.masks import _Chat, tokenize_conversation
from trl_sft_kit.testing import bundled_chat_template_names

EXTRA: dict[str, list[dict[str, Any]]] = {
    "none_values": [
        {"role": "user", "content": "Hi", "tool_calls": None},
        {"role": "assistant", "content": "Hello!", "reasoning_content": None},
    ],
    "reasoning": [
        {"role": "user", "content": "What is two plus two?"},
        {"role": "assistant", "content": "Four.", "reasoning_content": "2 + 2 = 4."},
    ],
}


def _reference(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, prompt: bool) -> str | None:
    try:
        return str(
            tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=prompt)
        )
    except Exception:
        return None


@pytest.mark.parametrize("name", bundled_chat_template_names())
def test_rendering_is_apply_chat_template(name: str, tokenizer_for: Callable[[str], Any]) -> None:
    tokenizer = tokenizer_for(name)
    compared = 0
    for messages in [*CONVERSATIONS.values(), *EXTRA.values()]:
        for tools in (None, TOOLS):
            chat = _Chat.create(tokenizer, messages, tools, None, None)
            assert chat.resolved is not None  # the direct path is the one under test
            for end in range(1, len(chat.messages) + 1):
                for prompt in (False, True):
                    expected = _reference(tokenizer, list(chat.messages[:end]), tools, prompt)
                    got = chat.try_render(chat.messages[:end], add_generation_prompt=prompt)
                    assert got == expected, (name, end, prompt)
                    compared += expected is not None
    assert compared > 0


def test_a_rendering_asked_for_twice_is_rendered_once(
    tokenizer_for: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl_sft_kit.data.masks import rendering

    tokenizer = tokenizer_for("qwen2_5")
    calls = []
    real = rendering._render_jinja()
    assert real is not None

    def counting(**kwargs: Any) -> Any:
        calls.append((kwargs["conversations"], kwargs["add_generation_prompt"]))
        return real(**kwargs)

    monkeypatch.setattr(rendering, "_render_jinja", lambda: counting)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    tokenize_conversation(tokenizer, messages)
    rendered = [repr(conversation) for conversation in calls]
    assert len(rendered) == len(set(rendered))
    assert len(calls) <= 4  # the row, its sentinels, the header with and without the generation prompt
