"""The skeleton memo gives the very tokens and labels of the full span finder, on every bundled template.

A row whose shape (template, roles, keys, empty contents) was seen before renders once, and its spans come
from the skeleton of that shape when its rendering is the skeleton filled with its contents. These tests run
each conversation with the memo off and on, over every template bundled in TRL, with contents that templates
strip, branch on or cut ('</think>'), and check the memo is used: one rendering per row of a known shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trl_parity import CONVERSATIONS, TOOLS

from trl_sft_kit.data.masks import memo, rendering, tokenize_conversation
from trl_sft_kit.testing import bundled_chat_template_names
from trl_sft_kit.testing.strategies import conversations

#: How each content of a conversation is changed to make another row: same shape, other contents; and
#: contents that change the shape or that templates look at.
VARIANTS: dict[str, Callable[[int, str], str]] = {
    "as_is": lambda n, text: text,
    "other_words": lambda n, text: f"Other words {n}: {text[::-1]}",
    "more_words": lambda n, text: f"{text} and then some more {n}",
    "padded": lambda n, text: f"  {text} \n",
    "empty": lambda n, text: "",
    "think": lambda n, text: f"<think>x{n}</think>{text}",
    "closing_think": lambda n, text: f"{text}</think> after {n}",
}


def _variant(messages: list[dict[str, Any]], change: Callable[[int, str], str]) -> list[dict[str, Any]]:
    out = []
    for n, message in enumerate(messages):
        message = dict(message)
        for key in ("content", "reasoning_content"):
            if isinstance(message.get(key), str) and message[key]:
                message[key] = change(n, message[key])
        out.append(message)
    return out


def _outcome(tokenizer: Any, messages: list[dict[str, Any]], tools: Any) -> Any:
    try:
        masked = tokenize_conversation(tokenizer, messages, tools=tools, require_end_of_turn=False)
    except Exception as exc:  # the same error either way is part of being identical
        return (type(exc).__name__, str(exc))
    return (masked.input_ids, masked.labels, masked.spans, masked.end_of_turn_trained)


def _rows() -> Iterator[tuple[list[dict[str, Any]], Any]]:
    for messages in CONVERSATIONS.values():
        for tools in (None, TOOLS):
            for change in VARIANTS.values():
                yield _variant(messages, change), tools


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    memo.clear()
    yield
    memo.ENABLED = True
    memo.clear()


def _both(tokenizer: Any, rows: list[tuple[list[dict[str, Any]], Any]]) -> tuple[list[Any], list[Any]]:
    memo.ENABLED = False
    full = [_outcome(tokenizer, messages, tools) for messages, tools in rows]
    memo.ENABLED = True
    memoised = [_outcome(tokenizer, messages, tools) for messages, tools in rows]
    return full, memoised


@pytest.mark.parametrize("name", bundled_chat_template_names())
def test_memoised_rows_are_the_full_algorithm(name: str, tokenizer_for: Callable[[str], Any]) -> None:
    rows = list(_rows())
    full, memoised = _both(tokenizer_for(name), rows)
    for row, a, b in zip(rows, full, memoised, strict=True):
        assert a == b, (name, row)
    # the memo was consulted on this template (unless it renders none of these rows)
    assert memo.COUNTS["misses"] > 0 or all(isinstance(a[0], str) for a in full)


def test_the_memo_serves_most_templates() -> None:
    served = []
    for name in bundled_chat_template_names():
        memo.clear()
        tokenizer = _tokenizer(name)
        for change in ("as_is", "other_words", "more_words"):
            _outcome(tokenizer, _variant(CONVERSATIONS["plain"], VARIANTS[change]), None)
        served.append(memo.COUNTS["hits"] == 2)
    assert sum(served) >= len(served) * 3 // 4, served


_TOKENIZERS: dict[str, Any] = {}


def _tokenizer(name: str) -> Any:
    if name not in _TOKENIZERS:
        from trl_sft_kit.testing import tiny_tokenizer

        _TOKENIZERS[name] = tiny_tokenizer(name)
    return _TOKENIZERS[name]


@pytest.mark.parametrize("name", ["qwen2_5", "llama3", "phi3"])
def test_a_known_shape_renders_once(name: str, tokenizer_for: Callable[[str], Any]) -> None:
    tokenizer = tokenizer_for(name)
    first = CONVERSATIONS["plain"]
    tokenize_conversation(tokenizer, first)
    before = rendering.COUNTS["renderings"]
    for n in range(5):
        tokenize_conversation(tokenizer, _variant(first, lambda i, text, n=n: f"{text} row {n}"))
    assert rendering.COUNTS["renderings"] - before == 5
    assert memo.COUNTS == {"hits": 5, "misses": 1, "mismatches": 0}
    memo.ENABLED = False
    before = rendering.COUNTS["renderings"]
    tokenize_conversation(tokenizer, _variant(first, lambda i, text: f"{text} again"))
    assert rendering.COUNTS["renderings"] - before == 8  # the full algorithm: 8 renderings for two turns


def test_a_template_that_strips_contents_falls_back(tokenizer_for: Callable[[str], Any]) -> None:
    tokenizer = tokenizer_for("llama3")  # trims every content
    rows = [(_variant(CONVERSATIONS["plain"], VARIANTS["padded"]), None)] * 2
    full, memoised = _both(tokenizer, rows)
    assert full == memoised
    assert memo.COUNTS["hits"] == 0


@pytest.mark.parametrize("name", ["qwen2_5", "llama3", "qwen3", "gemma", "gptoss"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_memo_property(name: str, data: st.DataObject, tokenizer_for: Callable[[str], Any]) -> None:
    memo.clear()
    tokenizer = tokenizer_for(name)
    base, _ = data.draw(conversations(tools=False, system=name != "gemma", max_turns=3))
    rows = [(base, None)]
    for _ in range(3):  # more rows of the same shape, other contents
        other, _ = data.draw(conversations(tools=False, system=name != "gemma", max_turns=3))
        if [m["role"] for m in other] == [m["role"] for m in base]:
            rows.append((other, None))
        rows.append((_variant(base, lambda n, text: text + text[:3]), None))
    full, memoised = _both(tokenizer, rows)
    assert full == memoised
