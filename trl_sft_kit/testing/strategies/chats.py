"""Conversations: role sequences with system prompts, tool calls and tool replies, in either chat layout."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from trl_sft_kit.testing.strategies.text import contents, texts, tool_calls

# ---------------------------------------------------------------------------------------------- chats

_SHAREGPT_ROLES = {
    "user": ("human", "user"),
    "assistant": ("gpt", "assistant", "bot", "model", "chatgpt"),
    "tool": ("observation", "tool", "function_response"),
}


@st.composite
def conversations(
    draw: st.DrawFn,
    *,
    style: str = "openai",
    need_assistant: bool = True,
    system: bool | None = None,
    tools: bool = True,
    max_turns: int = 6,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A conversation, OpenAI ``{role, content}`` or ShareGPT ``{from, value}`` (``style="sharegpt"``).

    Args:
        style: ``"openai"`` or ``"sharegpt"``.
        need_assistant: end on an assistant turn (otherwise on a user turn: a prompt).
        system: start with a system message (``None``: sometimes).
        tools: some assistant turns call tools, followed by the tools' results.
        max_turns: the most user turns.

    Returns:
        The messages and the strings that must survive conversion.
    """
    messages: list[dict[str, Any]] = []
    strings: list[str] = []
    sharegpt = style == "sharegpt"

    def add(role: str, content: Any, parts: list[str], **extra: Any) -> None:
        if sharegpt:
            source_role = draw(st.sampled_from(_SHAREGPT_ROLES.get(role, (role,))))
            messages.append({"from": source_role, "value": content, **extra})
        else:
            messages.append({"role": role, "content": content, **extra})
        strings.extend(parts)

    if system if system is not None else draw(st.booleans()):
        text = draw(texts())
        add("system", text, [text])
    turns = draw(st.integers(1, max_turns))
    for turn in range(turns):
        content, parts = draw(texts().map(lambda t: (t, [t]))) if sharegpt else draw(contents())
        add("user", content, parts)
        if turn == turns - 1 and not need_assistant:
            break
        if tools and draw(st.integers(0, 3)) == 0:
            calls, call_strings = draw(tool_calls(flat=True if sharegpt else None))
            if sharegpt:
                value = calls[0] if len(calls) == 1 and draw(st.booleans()) else calls
                messages.append({"from": "function_call", "value": json.dumps(value, ensure_ascii=False)})
                strings.extend(call_strings)
            else:
                empty = draw(st.sampled_from([None, ""]))
                messages.append({"role": "assistant", "content": empty, "tool_calls": calls})
                strings.extend(call_strings)
            for call in calls:
                result = draw(texts(long=False))
                extra: dict[str, Any] = {}
                if not sharegpt and draw(st.booleans()):
                    extra["name"] = call.get("function", call)["name"]
                if not sharegpt and "id" in call:
                    extra["tool_call_id"] = call["id"]
                add("tool", result, [result], **extra)
        content, parts = draw(texts().map(lambda t: (t, [t]))) if sharegpt else draw(contents())
        extra = {}
        if not sharegpt and draw(st.integers(0, 4)) == 0:
            reasoning = draw(texts(long=False))
            extra[draw(st.sampled_from(["reasoning_content", "thinking"]))] = reasoning
            parts = [*parts, reasoning]
        add("assistant", content, parts, **extra)
    return messages, strings
