"""Conversion of every built-in format to TRL's canonical rows.

Exact shapes for hand-written rows, and properties (pure, deterministic, lossless) over generated rows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import FormatOptions, detect_format, get_format

PLAIN = FormatOptions(chat=False)
CHAT = FormatOptions(chat=True)

# -------------------------------------------------------------------------------------- messages


def test_messages_are_kept_with_roles_and_string_contents() -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ],
        "id": 7,
    }
    assert get_format("messages").convert(row, PLAIN) == {"messages": row["messages"]}


def test_text_content_parts_are_joined_into_one_string() -> None:
    row = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Look "}, {"type": "text", "text": "here."}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Seen."}]},
        ]
    }
    converted = get_format("messages").convert(row, PLAIN)
    assert converted == {
        "messages": [{"role": "user", "content": "Look here."}, {"role": "assistant", "content": "Seen."}]
    }


def test_tools_are_kept_as_a_json_string() -> None:
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    tool_calls = [{"type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    row = {
        "messages": [
            {"role": "user", "content": "Time?"},
            {"role": "assistant", "content": None, "tool_calls": tool_calls},
            {"role": "tool", "name": "get_time", "content": "12:00"},
            {"role": "assistant", "content": "It is noon."},
        ],
        "tools": tools,
    }
    converted = get_format("messages").convert(row, PLAIN)
    assert isinstance(converted["tools"], str)
    assert json.loads(converted["tools"]) == tools
    assert converted["messages"][1] == {"role": "assistant", "content": "", "tool_calls": tool_calls}
    assert converted["messages"][2] == {"role": "tool", "content": "12:00", "name": "get_time"}
    # A tools column that is already a JSON string is kept as it is; an empty one is dropped.
    assert get_format("messages").convert({**row, "tools": json.dumps(tools)}, PLAIN)["tools"] == json.dumps(
        tools
    )
    assert "tools" not in get_format("messages").convert({**row, "tools": []}, PLAIN)


def test_converting_a_canonical_messages_row_again_changes_nothing() -> None:
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": None},
            {"role": "assistant", "content": "Hello", "tool_calls": None},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    detector = get_format("messages")
    once = detector.convert(row, PLAIN)
    assert detector.convert(once, PLAIN) == once
    assert detector.convert(once, CHAT) == once


# -------------------------------------------------------------------------------------- instructions


def test_alpaca_without_chat_uses_the_alpaca_layout() -> None:
    row = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
    assert get_format("alpaca").convert(row, PLAIN) == {
        "prompt": "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n",
        "completion": "5",
    }
    no_input = {"instruction": "Say hi.", "input": "", "output": "Hi"}
    assert get_format("alpaca").convert(no_input, PLAIN) == {
        "prompt": "### Instruction:\nSay hi.\n\n### Response:\n",
        "completion": "Hi",
    }


def test_alpaca_with_system_and_history_without_chat() -> None:
    row = {
        "instruction": "And 3+3?",
        "output": "6",
        "system": "You are a calculator.",
        "history": [["1+1?", "2"], ["2+2?", "4"]],
    }
    prompt = get_format("alpaca").convert(row, PLAIN)["prompt"]
    assert prompt == (
        "You are a calculator.\n\n"
        "### Instruction:\n1+1?\n\n### Response:\n2\n\n"
        "### Instruction:\n2+2?\n\n### Response:\n4\n\n"
        "### Instruction:\nAnd 3+3?\n\n### Response:\n"
    )


def test_alpaca_with_chat_is_conversational_with_system_and_history() -> None:
    row = {
        "instruction": "And 3+3?",
        "input": "Answer with digits.",
        "output": "6",
        "system": "You are a calculator.",
        "history": [["1+1?", "2"]],
    }
    assert get_format("alpaca").convert(row, CHAT) == {
        "prompt": [
            {"role": "system", "content": "You are a calculator."},
            {"role": "user", "content": "1+1?"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "And 3+3?\n\nAnswer with digits."},
        ],
        "completion": [{"role": "assistant", "content": "6"}],
    }


@pytest.mark.parametrize(
    ("row", "instruction", "answer"),
    [
        ({"instruction": "Say hi.", "response": "Hi"}, "Say hi.", "Hi"),
        ({"question": "Capital of France?", "answer": "Paris"}, "Capital of France?", "Paris"),
        ({"prompt": "Say hi.", "response": "Hi"}, "Say hi.", "Hi"),
        ({"query": "2+2?", "response": "4"}, "2+2?", "4"),
    ],
)
def test_instruction_response_and_its_cousins(row: dict[str, Any], instruction: str, answer: str) -> None:
    detector = get_format("instruction_response")
    assert detector.convert(row, PLAIN) == {
        "prompt": f"### Instruction:\n{instruction}\n\n### Response:\n",
        "completion": answer,
    }
    assert detector.convert({**row, "system": "Be kind."}, CHAT) == {
        "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": instruction}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def test_instruction_response_keeps_a_context_field() -> None:
    """Dolly-style rows carry a context next to the instruction; it must not be dropped."""
    row = {"instruction": "Summarise.", "context": "A long text.", "response": "Short.", "category": "qa"}
    plain = get_format("instruction_response").convert(row, PLAIN)
    assert plain == {
        "prompt": "### Instruction:\nSummarise.\n\n### Input:\nA long text.\n\n### Response:\n",
        "completion": "Short.",
    }
    chat = get_format("instruction_response").convert(row, CHAT)
    assert chat["prompt"] == [{"role": "user", "content": "Summarise.\n\nA long text."}]
    with_input = {"prompt": "Translate.", "input": "Bonjour", "response": "Hello"}
    assert get_format("instruction_response").convert(with_input, CHAT)["prompt"] == [
        {"role": "user", "content": "Translate.\n\nBonjour"}
    ]
    # input/output rows: the input *is* the instruction, so it is not repeated as context.
    pair = get_format("instruction_response").convert({"input": "Q", "output": "A"}, CHAT)
    assert pair["prompt"] == [{"role": "user", "content": "Q"}]
    with pytest.raises(RowError) as caught:
        get_format("instruction_response").convert({**row, "context": ["a list"]}, PLAIN)
    assert caught.value.field == "context"


# -------------------------------------------------------------------------------------- pass-through


def test_prompt_completion_strings_pass_through() -> None:
    row = {"prompt": "The sky is", "completion": " blue.", "source": "web"}
    for options in (PLAIN, CHAT):
        assert get_format("prompt_completion").convert(row, options) == {
            "prompt": "The sky is",
            "completion": " blue.",
        }


def test_prompt_completion_message_lists_pass_through() -> None:
    row = {
        "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        "completion": [{"role": "assistant", "content": "A"}],
    }
    converted = get_format("prompt_completion").convert(row, PLAIN)
    assert converted == {"prompt": row["prompt"], "completion": row["completion"]}
    assert get_format("prompt_completion").convert(converted, PLAIN) == converted


def test_text_is_renamed_to_text() -> None:
    assert get_format("text").convert({"body": "Hello.", "id": 1}, FormatOptions(text_field="body")) == {
        "text": "Hello."
    }
    assert get_format("text").convert({"text": "Hello."}, PLAIN) == {"text": "Hello."}


# -------------------------------------------------------------------------------------- properties
# Generators stay local to these tests for now; a shared strategies module comes later.

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda text: text.strip() != ""
)
TEXT_FIELDS = st.sampled_from(["text", "body", "document", "content"])
OPTIONS = st.builds(FormatOptions, chat=st.booleans())


@st.composite
def contents(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A message content: a string, or a list of text parts; with the strings that must survive."""
    parts = draw(st.lists(TEXT, min_size=1, max_size=3))
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0], parts
    return [{"type": "text", "text": part} for part in parts], parts


@st.composite
def conversations(draw: st.DrawFn, *, need_assistant: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    messages: list[dict[str, Any]] = []
    texts: list[str] = []
    if draw(st.booleans()):
        system = draw(TEXT)
        messages.append({"role": "system", "content": system})
        texts.append(system)
    turns = draw(st.integers(min_value=1, max_value=3))
    for turn in range(turns):
        for role in ("user", "assistant"):
            if role == "assistant" and turn == turns - 1 and not need_assistant:
                break
            content, parts = draw(contents())
            messages.append({"role": role, "content": content})
            texts += parts
    return messages, texts


@st.composite
def messages_rows(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    messages, texts = draw(conversations())
    return {"messages": messages}, texts


@st.composite
def alpaca_rows(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    instruction, output = draw(TEXT), draw(TEXT)
    row: dict[str, Any] = {"instruction": instruction, "output": output}
    texts = [instruction, output]
    context = draw(st.one_of(st.none(), st.just(""), TEXT))
    if context is not None:
        row["input"] = context
        texts.append(context)
    if draw(st.booleans()):
        row["system"] = draw(TEXT)
        texts.append(row["system"])
    if draw(st.booleans()):
        history = draw(st.lists(st.tuples(TEXT, TEXT), max_size=2))
        row["history"] = [list(pair) for pair in history]
        texts += [text for pair in history for text in pair]
    return row, [text for text in texts if text]


@st.composite
def instruction_response_rows(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    question_field, answer_field = draw(
        st.sampled_from(
            [
                ("instruction", "response"),
                ("question", "answer"),
                ("prompt", "response"),
                ("query", "response"),
            ]
        )
    )
    question, answer = draw(TEXT), draw(TEXT)
    row: dict[str, Any] = {question_field: question, answer_field: answer}
    texts = [question, answer]
    context_field = draw(st.sampled_from([None, "context", "input"]))
    if context_field is not None:
        row[context_field] = draw(TEXT)
        texts.append(row[context_field])
    if draw(st.booleans()):
        row["system"] = draw(TEXT)
        texts.append(row["system"])
    return row, texts


@st.composite
def prompt_completion_rows(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    if draw(st.booleans()):
        prompt, completion = draw(TEXT), draw(TEXT)
        return {"prompt": prompt, "completion": completion}, [prompt, completion]
    prompt_messages, prompt_texts = draw(conversations(need_assistant=False))
    reply, reply_texts = draw(contents())
    row = {"prompt": prompt_messages, "completion": [{"role": "assistant", "content": reply}]}
    return row, prompt_texts + reply_texts


@st.composite
def text_rows(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], str]:
    field = draw(TEXT_FIELDS)
    text = draw(TEXT)
    return {field: text}, [text], field


@st.composite
def any_rows(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[str], FormatOptions]:
    """(format name, row, strings that must survive, options) for any built-in format."""
    chat = draw(st.booleans())
    name = draw(st.sampled_from(["messages", "alpaca", "instruction_response", "prompt_completion", "text"]))
    if name == "text":
        row, texts, field = draw(text_rows())
        return name, row, texts, FormatOptions(text_field=field, chat=chat)
    strategy = {
        "messages": messages_rows,
        "alpaca": alpaca_rows,
        "instruction_response": instruction_response_rows,
        "prompt_completion": prompt_completion_rows,
    }[name]
    row, texts = draw(strategy())
    return name, row, texts, FormatOptions(chat=chat)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


CANONICAL_KEYS = {"messages": {"messages"}, "prompt_completion": {"prompt", "completion"}, "text": {"text"}}


@settings(max_examples=300, deadline=None)
@given(any_rows())
def test_conversion_is_pure_deterministic_lossless_and_canonical(
    case: tuple[str, dict[str, Any], list[str], FormatOptions],
) -> None:
    name, row, texts, options = case
    detector = get_format(name)
    assert detect_format([row], 1, options).format == name
    before = copy.deepcopy(row)
    converted = detector.convert(row, options)
    assert row == before, "convert mutated its input"
    assert detector.convert(row, options) == converted, "convert is not deterministic"
    assert json.loads(json.dumps(converted)) == converted, "the canonical row is not plain JSON"
    assert set(converted) == CANONICAL_KEYS[detector.canonical]
    outputs = list(_strings(converted))
    for text in texts:
        assert any(text in output for output in outputs), f"{text!r} was lost"


@settings(max_examples=150, deadline=None)
@given(messages_rows(), st.booleans())
def test_converting_messages_twice_is_the_same_as_once(
    case: tuple[dict[str, Any], list[str]], chat: bool
) -> None:
    row, _ = case
    options = FormatOptions(chat=chat)
    once = get_format("messages").convert(row, options)
    assert get_format("messages").convert(once, options) == once
    assert detect_format([once], 1, options).format == "messages"


@settings(max_examples=150, deadline=None)
@given(st.one_of(alpaca_rows(), instruction_response_rows()), OPTIONS)
def test_instruction_data_becomes_strings_or_conversations_by_chat_option(
    case: tuple[dict[str, Any], list[str]], options: FormatOptions
) -> None:
    row, _ = case
    name = detect_format([row], 1, options).format
    converted = get_format(name).convert(row, options)
    if options.chat:
        assert [m["role"] for m in converted["completion"]] == ["assistant"]
        roles = [m["role"] for m in converted["prompt"]]
        assert roles[-1] == "user"
        assert set(roles) <= {"system", "user", "assistant"}
        assert "system" not in roles[1:]
        # The converted row is itself a valid conversational prompt-completion row.
        assert get_format("prompt_completion").convert(converted, options) == converted
    else:
        assert isinstance(converted["prompt"], str)
        assert isinstance(converted["completion"], str)
        assert converted["prompt"].endswith("### Response:\n")


def test_rows_that_convert_raise_row_errors_only() -> None:
    with pytest.raises(RowError):
        get_format("alpaca").convert({"instruction": 3, "output": "x"}, PLAIN)
