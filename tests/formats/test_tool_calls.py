"""Tool calls in chat rows: normalised, checked, stored in a ``datasets.Dataset`` intact, and rendered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trl_sft_kit.data import prepare_dataset
from trl_sft_kit.data.prepare import json_read_back_problems, to_dataset
from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import FormatOptions, get_format
from trl_sft_kit.specs import DatasetSpec

PLAIN = FormatOptions()
MESSAGES = get_format("messages")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "The weather in a city now.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def tool_row(arguments: Any = '{"city": "Paris"}', **call: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": arguments},
                    },
                    *([call] if call else []),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "weather", "content": "sunny, 21 C"},
            {"role": "assistant", "content": "It is sunny.", "reasoning_content": "The tool said so."},
        ],
        "tools": TOOLS,
    }


def test_tool_calls_ids_names_and_reasoning_are_kept_and_arguments_parsed() -> None:
    converted = MESSAGES.convert(tool_row(), PLAIN)
    assert converted["messages"][2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": {"city": "Paris"}},
            }
        ],
    }
    assert converted["messages"][3] == {
        "role": "tool",
        "content": "sunny, 21 C",
        "tool_call_id": "call_1",
        "name": "weather",
    }
    assert converted["messages"][4]["reasoning_content"] == "The tool said so."
    assert json.loads(converted["tools"]) == TOOLS
    assert MESSAGES.convert(converted, PLAIN) == converted


def test_flat_calls_missing_arguments_and_known_message_keys() -> None:
    row = tool_row({"city": "Rome"}, name="clock")
    message = {"role": "assistant", "content": "Hi", "thinking": "hm", "train": False, "weight": 0.5, "ts": 1}
    row["messages"][4] = message
    converted = MESSAGES.convert(row, PLAIN)
    assert converted["messages"][2]["tool_calls"][1] == {
        "type": "function",
        "function": {"name": "clock", "arguments": {}},
    }
    # Keys templates or loss masks read are kept; others (``ts``) are left out.
    assert converted["messages"][4] == {
        "role": "assistant",
        "content": "Hi",
        "thinking": "hm",
        "train": False,
        "weight": 0.5,
    }


def test_converting_does_not_share_argument_objects_with_the_source() -> None:
    arguments = {"city": "Paris", "days": [1, 2]}
    converted = MESSAGES.convert(tool_row(arguments), PLAIN)
    converted["messages"][2]["tool_calls"][0]["function"]["arguments"]["days"].append(3)
    assert arguments == {"city": "Paris", "days": [1, 2]}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda row: row["messages"][2].update(tool_calls="weather"),
            "messages[2].tool_calls",
            "list of tool calls",
        ),
        (
            lambda row: row["messages"][2].update(tool_calls=[3]),
            "messages[2].tool_calls[0]",
            "tool call object",
        ),
        (
            lambda row: row["messages"][2]["tool_calls"][0]["function"].update(arguments="{city"),
            "messages[2].tool_calls[0].arguments",
            "not valid JSON",
        ),
        (
            lambda row: row["messages"][2]["tool_calls"][0]["function"].update(arguments="[1, 2]"),
            "messages[2].tool_calls[0].arguments",
            "JSON object",
        ),
        (
            lambda row: row["messages"][2]["tool_calls"][0]["function"].update(name=""),
            "messages[2].tool_calls[0].name",
            "function name",
        ),
        (
            lambda row: row["messages"][2]["tool_calls"][0].update(type="code_interpreter"),
            "messages[2].tool_calls[0]",
            "only function calls",
        ),
        (
            lambda row: row["messages"][2]["tool_calls"][0].update(id=7),
            "messages[2].tool_calls[0].id",
            "string",
        ),
        (
            lambda row: row["messages"][1].update(tool_calls=[{"name": "f"}]),
            "messages[1].tool_calls",
            "only assistant messages",
        ),
        (lambda row: row["messages"][3].update(tool_call_id=1), "messages[3].tool_call_id", "string"),
        (
            lambda row: row["messages"][4].update(reasoning_content=["a"]),
            "messages[4].reasoning_content",
            "string",
        ),
        (lambda row: row["messages"][4].update(train="yes"), "messages[4].train", "true or false"),
        (lambda row: row["messages"][4].update(weight=True), "messages[4].weight", "number"),
        (lambda row: row["messages"][3].update(content=""), "messages[3].content", "empty"),
        (lambda row: row.update(tools='{"not": "a list"}'), "tools", "list of tool schema"),
    ],
)
def test_bad_tool_calls_name_their_field(change: Any, field: str, words: str) -> None:
    row = tool_row()
    change(row)
    with pytest.raises(RowError) as caught:
        MESSAGES.convert(row, PLAIN)
    assert caught.value.field == field
    assert words in caught.value.reason


# -------------------------------------------------------------------------------------- storage


def test_rows_with_and_without_tool_calls_survive_a_dataset_exactly() -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
        tool_row({"city": "Paris"}),
        tool_row({"city": 3, "days": [1, 2], "deep": {"a": None, "b": True}}),  # other shape, other types
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Yo", "name": "bot"},
            ]
        },
    ]
    converted = [MESSAGES.convert(row, PLAIN) for row in rows]
    dataset = to_dataset(converted)
    assert len(dataset) == 4
    assert dataset.column_names == ["messages", "tools"]  # a column the first row lacks is kept
    for original, stored in zip(converted, dataset, strict=True):
        assert stored["messages"] == original["messages"]  # no null-filled keys, no lost argument
        assert stored["tools"] == original.get("tools")


def test_plain_chat_rows_are_stored_as_plain_structs() -> None:
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}] * 2
    dataset = to_dataset(rows)
    assert type(dataset.features["messages"].feature).__name__ != "Json"
    assert dataset.to_list() == rows


def test_numbers_the_dataset_reads_back_changed_are_reported() -> None:
    rows = [tool_row({"lat": -0.3338, "n": 1}), tool_row({"lat": 48.5})]
    converted = [MESSAGES.convert(row, PLAIN) for row in rows]
    dataset = to_dataset(converted)
    problems = json_read_back_problems(dataset, converted, ["row 0", "row 1"])
    read_back = dataset[0]["messages"][2]["tool_calls"][0]["function"]["arguments"]["lat"]
    if read_back == -0.3338:
        assert problems == []  # a datasets release that reads floats exactly
    else:
        assert problems == [f"row 0, messages: -0.3338 is read back as {read_back!r}"]
    _, report = prepare_dataset(DatasetSpec(rows), chat=True)
    assert bool(report.notes) == bool(problems)
    if problems:
        assert "-0.3338" in report.summary()


# -------------------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def qwen() -> Any:
    from trl_sft_kit.testing import tiny_tokenizer

    return tiny_tokenizer("qwen2_5")


def test_a_converted_tool_call_row_renders_with_a_tool_template(qwen: Any) -> None:
    converted = MESSAGES.convert(tool_row(), PLAIN)
    text = qwen.apply_chat_template(
        converted["messages"], tools=json.loads(converted["tools"]), tokenize=False
    )
    assert '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in text
    assert '"description": "The weather in a city now."' in text
    # What the trainer reads from the dataset renders the same.
    stored = to_dataset([converted])[0]
    assert (
        qwen.apply_chat_template(stored["messages"], tools=json.loads(stored["tools"]), tokenize=False)
        == text
    )


def test_a_sharegpt_function_call_renders_like_the_openai_one(qwen: Any) -> None:
    sharegpt = {
        "conversations": [
            {"from": "system", "value": "You can call tools."},
            {"from": "human", "value": "Weather in Paris?"},
            {
                "from": "function_call",
                "value": '{"name": "weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
            },
            {"from": "observation", "value": "sunny, 21 C"},
            {"from": "gpt", "value": "It is sunny."},
        ],
        "tools": TOOLS,
    }
    row = tool_row()
    del row["messages"][4]["reasoning_content"]
    expected = MESSAGES.convert(row, PLAIN)
    converted = get_format("sharegpt").convert(sharegpt, PLAIN)

    def render(converted: dict[str, Any]) -> str:
        return qwen.apply_chat_template(
            converted["messages"], tools=json.loads(converted["tools"]), tokenize=False
        )

    assert render(converted) == render(expected)
