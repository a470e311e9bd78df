"""ShareGPT rows become standard chat messages: roles renamed, function calls parsed, extra columns kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import FormatOptions, get_format
from trl_sft_kit.formats.sharegpt import ROLE_NAMES

PLAIN = FormatOptions()
SHAREGPT = get_format("sharegpt")


def convert(row: dict[str, Any]) -> dict[str, Any]:
    return SHAREGPT.convert(row, PLAIN)


@pytest.mark.parametrize(
    ("source", "role"), sorted((name, role) for name, role in ROLE_NAMES.items() if name != "function_call")
)
def test_every_role_name_and_synonym_becomes_a_standard_role(source: str, role: str) -> None:
    turns = [{"from": source, "value": "Something."}]
    if role != "assistant":
        turns.append({"from": "gpt", "value": "Reply."})
    if role not in ("system", "user"):
        turns.insert(0, {"from": "human", "value": "Hi."})
    messages = convert({"conversations": turns})["messages"]
    assert {"role": role, "content": "Something."} in messages


def test_a_plain_conversation() -> None:
    row = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
        ],
        "id": "abc",
    }
    assert convert(row) == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
    }


def test_function_calls_become_tool_calls_and_observations_tool_messages() -> None:
    tools = [{"name": "weather", "description": "Weather now", "parameters": {"type": "object"}}]
    row = {
        "conversations": [
            {"from": "human", "value": "Weather in Paris and Rome?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
            {"from": "observation", "value": "sunny"},
            {
                "from": "function_call",
                "value": json.dumps(
                    [{"name": "weather", "arguments": '{"city": "Rome"}'}, {"name": "clock"}]
                ),
            },
            {"from": "function_response", "value": "rain"},
            {"from": "tool", "value": "12:00"},
            {"from": "gpt", "value": "Sunny in Paris, rain in Rome."},
        ],
        "tools": json.dumps(tools),
        "system": "You can call tools.",
    }
    converted = convert(row)
    assert converted["tools"] == row["tools"]
    assert converted["messages"] == [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "content": "sunny"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "weather", "arguments": {"city": "Rome"}}},
                {"type": "function", "function": {"name": "clock", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "rain"},
        {"role": "tool", "content": "12:00"},
        {"role": "assistant", "content": "Sunny in Paris, rain in Rome."},
    ]
    # The converted row is a canonical messages row: converting it again changes nothing.
    assert get_format("messages").convert(converted, PLAIN) == converted


def test_tools_as_a_list_are_stored_as_json_and_empty_ones_are_dropped() -> None:
    base = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
    tools = [{"type": "function", "function": {"name": "f", "description": "é"}}]
    assert json.loads(convert({**base, "tools": tools})["tools"]) == tools
    for empty in (None, "", [], "[]"):
        assert "tools" not in convert({**base, "tools": empty})


def test_the_system_column_comes_first_and_agrees_with_a_system_turn() -> None:
    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]
    assert convert({"conversations": turns, "system": "S"})["messages"][0] == {
        "role": "system",
        "content": "S",
    }
    assert convert({"conversations": turns, "system": ""})["messages"][0]["role"] == "user"
    same = [{"from": "system", "value": "S"}, *turns]
    assert len(convert({"conversations": same, "system": "S"})["messages"]) == 3
    with pytest.raises(RowError) as caught:
        convert({"conversations": [{"from": "system", "value": "Other"}, *turns], "system": "S"})
    assert caught.value.field == "system"


def test_turns_written_as_role_and_content_are_read_too() -> None:
    row = {"conversations": [{"role": "human", "content": "Hi"}, {"role": "gpt", "content": "Yo"}]}
    assert convert(row) == {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    }


@pytest.mark.parametrize(
    ("turns", "extra", "field", "words"),
    [
        (
            [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "Yo"}],
            {},
            "conversations[1].from",
            "robot",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"value": "Yo"}],
            {},
            "conversations[1].from",
            "unknown role None",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}],
            {},
            "conversations[1].value",
            "empty",
        ),
        (
            [{"from": "human", "value": None}, {"from": "gpt", "value": "Yo"}],
            {},
            "conversations[0].value",
            "null",
        ),
        (
            [{"from": "human", "value": 3}, {"from": "gpt", "value": "Yo"}],
            {},
            "conversations[0].value",
            "int",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hm"}],
            {},
            "conversations",
            "no assistant",
        ),
        (
            [
                {"from": "human", "value": "Hi"},
                {"from": "system", "value": "S"},
                {"from": "gpt", "value": "Yo"},
            ],
            {},
            "conversations[1].from",
            "only come first",
        ),
        (
            [
                {"from": "human", "value": "Hi"},
                {"from": "system", "value": "S"},
                {"from": "gpt", "value": "Yo"},
            ],
            {"system": "Column"},
            "conversations[1].from",
            "only come first",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "{not json"}],
            {},
            "conversations[1].value",
            "JSON call",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": '{"arguments": {}}'}],
            {},
            "conversations[1].value",
            "function name",
        ),
        (
            [
                {"from": "human", "value": "Hi"},
                {"from": "function_call", "value": '{"name": "f", "arguments": 3}'},
            ],
            {},
            "conversations[1].value",
            "JSON object",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}],
            {"tools": "{oops"},
            "tools",
            "JSON",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}],
            {"tools": [1]},
            "tools",
            "schema",
        ),
        (
            [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}],
            {"system": 3},
            "system",
            "string",
        ),
        ([], {}, "conversations", "non-empty list"),
        (["Hi", "Yo"], {}, "conversations[0]", "turn object"),
    ],
)
def test_bad_turns_name_the_sharegpt_field(turns: Any, extra: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(RowError) as caught:
        convert({"conversations": turns, **extra})
    assert caught.value.field == field
    assert words in caught.value.reason


def test_per_turn_loss_switches_are_kept() -> None:
    row = {
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Yo", "weight": 0},
            {"from": "human", "value": "Again"},
            {"from": "gpt", "value": "Hello", "weight": 1, "train": True},
        ]
    }
    messages = convert(row)["messages"]
    assert messages[1] == {"role": "assistant", "content": "Yo", "weight": 0}
    assert messages[3] == {"role": "assistant", "content": "Hello", "weight": 1, "train": True}
    with pytest.raises(RowError) as caught:
        convert(
            {
                "conversations": [
                    {"from": "human", "value": "Hi"},
                    {"from": "gpt", "value": "Yo", "weight": "x"},
                ]
            }
        )
    assert caught.value.field == "conversations[1].weight"
