"""Messages other than assistant turns, trained when ``loss("assistant_only", roles=...)`` asks for them.

``message_roles`` says which ``roles=`` names a message answers to; ``content_spans`` finds the content of
the chosen system, user and tool messages in the rendered conversation (their header and end of turn are
the template's, not the message's, and stay out of the loss). Assistant turns are found by
``trl_sft_kit.data.masks``.

>>> sorted(message_roles({"role": "assistant", "tool_calls": [{"function": {"name": "clock"}}]}))
['assistant', 'tool_call']
>>> rendered = "<s>system\\nBe brief.</s><s>user\\nHi</s><s>assistant\\nHello</s>"
>>> messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
>>> [rendered[a:b] for a, b, _ in content_spans(messages, rendered, {0}, [])]
['Be brief.']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from trl_sft_kit.errors import RowError

__all__ = ["content_spans", "message_roles"]


def message_roles(message: Mapping[str, Any]) -> set[str]:
    """The ``roles=`` names a message answers to: its role, and ``tool_call`` for an assistant turn that
    calls a tool."""
    role = str(message.get("role"))
    return {role, "tool_call"} if role == "assistant" and message.get("tool_calls") else {role}


def content_spans(
    messages: Sequence[Mapping[str, Any]],
    rendered: str,
    chosen: Collection[int],
    turn_spans: Sequence[tuple[int, int, int]],
) -> list[tuple[int, int, int]]:
    """``turn_spans`` (``(start, end, message_index)`` of assistant turns in ``rendered``) with the content
    of every chosen non-assistant message added, each found after the messages before it; sorted.

    Raises:
        RowError: a chosen message has no text content, or the template does not write it as it is.
    """
    ends = {index: end for _, end, index in turn_spans}
    spans, cursor = list(turn_spans), 0
    for index, message in enumerate(messages):
        cursor = max(cursor, ends.get(index, cursor))
        if index not in chosen or message.get("role") == "assistant":
            continue
        content = message.get("content")
        text = content.strip() if isinstance(content, str) else ""
        start = rendered.find(text, cursor) if text else -1
        if start < 0:
            raise RowError(
                f"Could not find the content of {message.get('role')} message {index} in the rendered "
                "conversation, to train it as the loss roles ask (is it a non-empty string?).",
                field="messages",
            )
        spans.append((start, start + len(text), index))
        cursor = start + len(text)
    return sorted(spans)
