"""Conversion of the built-in formats to TRL's canonical rows: exact shapes for hand-written rows.

ShareGPT, tool calls and preference data have files of their own; properties over generated rows are in
``test_format_properties.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import FormatOptions, get_format

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


def test_tools_are_kept_as_a_json_string_and_call_arguments_become_objects() -> None:
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
    # OpenAI's JSON-string arguments are parsed: chat templates write them with `tojson`.
    parsed_calls = [{"type": "function", "function": {"name": "get_time", "arguments": {}}}]
    assert converted["messages"][1] == {"role": "assistant", "content": "", "tool_calls": parsed_calls}
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


# -------------------------------------------------------------------------------------- errors


def test_rows_that_convert_raise_row_errors_only() -> None:
    with pytest.raises(RowError):
        get_format("alpaca").convert({"instruction": 3, "output": "x"}, PLAIN)
