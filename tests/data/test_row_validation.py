"""Bad rows: a ``RowError`` naming file, line and field, or skipped and reported under ``on_bad_rows="skip"``.

Each case is checked both ways, in a JSON Lines file with a blank line so that line numbers are tested too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit.data import DatasetReport, SkippedRow, convert_rows, load_rows, prepare_dataset
from trl_sft_kit.errors import DatasetError, DatasetFormatError, RowError
from trl_sft_kit.formats import FormatOptions
from trl_sft_kit.specs import DatasetSpec

USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello"}
GOOD_CHAT = {"messages": [USER, ASSISTANT]}
GOOD_ALPACA = {"instruction": "Say hi.", "input": "", "output": "Hi"}
GOOD_SHAREGPT = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
CALL = {"type": "function", "function": {"name": "clock", "arguments": "{}"}}

# (case id, a good row of the same format, the bad row, the field the error must name)
BAD_ROWS: list[tuple[str, dict[str, Any], Any, str | None]] = [
    (
        "unknown role",
        GOOD_CHAT,
        {"messages": [USER, {"role": "bot", "content": "Hello"}]},
        "messages[1].role",
    ),
    (
        "role missing",
        GOOD_CHAT,
        {"messages": [{"role": "user", "content": "Hi"}, {"content": "x"}]},
        "messages[1].role",
    ),
    (
        "system not first",
        GOOD_CHAT,
        {"messages": [USER, {"role": "system", "content": "S"}, ASSISTANT]},
        "messages[1].role",
    ),
    (
        "empty content",
        GOOD_CHAT,
        {"messages": [USER, {"role": "assistant", "content": "  "}]},
        "messages[1].content",
    ),
    (
        "number content",
        GOOD_CHAT,
        {"messages": [{"role": "user", "content": 5}, ASSISTANT]},
        "messages[0].content",
    ),
    (
        "null content",
        GOOD_CHAT,
        {"messages": [{"role": "user", "content": None}, ASSISTANT]},
        "messages[0].content",
    ),
    ("no assistant turn", GOOD_CHAT, {"messages": [USER, {"role": "user", "content": "Again"}]}, "messages"),
    ("null messages", GOOD_CHAT, {"messages": None}, "messages"),
    ("empty messages", GOOD_CHAT, {"messages": []}, "messages"),
    ("null instruction", GOOD_ALPACA, {"instruction": None, "output": "Hi"}, "instruction"),
    ("empty instruction", GOOD_ALPACA, {"instruction": "", "input": "", "output": "Hi"}, "instruction"),
    ("blank output", GOOD_ALPACA, {"instruction": "Say hi.", "output": " \n"}, "output"),
    ("number input", GOOD_ALPACA, {"instruction": "Say hi.", "input": 3, "output": "Hi"}, "input"),
    (
        "bad history",
        GOOD_ALPACA,
        {"instruction": "Say hi.", "output": "Hi", "history": [["only one"]]},
        "history",
    ),
    ("null text", {"text": "fine"}, {"text": None}, "text"),
    ("number text", {"text": "fine"}, {"text": 42}, "text"),
    (
        "completion without assistant",
        {"prompt": [USER], "completion": [ASSISTANT]},
        {"prompt": [USER], "completion": [{"role": "user", "content": "x"}]},
        "completion",
    ),
    (
        "sharegpt unknown role",
        GOOD_SHAREGPT,
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "narrator", "value": "x"}]},
        "conversations[1].from",
    ),
    (
        "sharegpt empty value",
        GOOD_SHAREGPT,
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}]},
        "conversations[1].value",
    ),
    (
        "sharegpt function call not JSON",
        GOOD_SHAREGPT,
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "clock()"}]},
        "conversations[1].value",
    ),
    (
        "sharegpt no assistant turn",
        GOOD_SHAREGPT,
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "observation", "value": "x"}]},
        "conversations",
    ),
    (
        "tool call arguments not JSON",
        GOOD_CHAT,
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "clock", "arguments": "{"}}],
                },
                ASSISTANT,
            ]
        },
        "messages[1].tool_calls[0].arguments",
    ),
    (
        "tool call without a name",
        GOOD_CHAT,
        {"messages": [USER, {"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}]},
        "messages[1].tool_calls[0].name",
    ),
    ("tools not JSON", GOOD_CHAT, {**GOOD_CHAT, "tools": "[{"}, "tools"),
    ("non-object row (list)", {"text": "fine"}, ["a", "list"], None),
    ("non-object row (string)", {"text": "fine"}, "just a string", None),
    ("non-object row (null)", {"text": "fine"}, None, None),
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _prepare(source: Any, **options: Any) -> Any:
    spec = DatasetSpec(source, **options)
    return convert_rows(load_rows(spec), spec, FormatOptions())


@pytest.mark.parametrize(("case", "good", "bad", "field"), BAD_ROWS, ids=[case[0] for case in BAD_ROWS])
def test_bad_row_names_file_line_and_field(
    tmp_path: Path, case: str, good: dict[str, Any], bad: Any, field: str | None
) -> None:
    path = _write(
        tmp_path / "data.jsonl", [json.dumps(good), "", json.dumps(good), json.dumps(bad), json.dumps(good)]
    )
    with pytest.raises(RowError) as caught:
        _prepare(str(path))
    error = caught.value
    assert (error.path, error.line, error.row, error.field) == (str(path), 4, 2, field)
    message = str(error)
    where = f"{path}, line 4" + (f", field {field!r}" if field else "")
    assert message.startswith(where + ": "), message
    assert "on_bad_rows='skip'" in message
    assert error.reason in message


@pytest.mark.parametrize(("case", "good", "bad", "field"), BAD_ROWS, ids=[case[0] for case in BAD_ROWS])
def test_bad_row_is_skipped_and_reported(
    tmp_path: Path, case: str, good: dict[str, Any], bad: Any, field: str | None
) -> None:
    path = _write(tmp_path / "data.jsonl", [json.dumps(good), json.dumps(bad), "", json.dumps(good)])
    prepared = _prepare(str(path), on_bad_rows="skip")
    report: DatasetReport = prepared.report
    assert (report.rows_read, report.rows_kept) == (3, 2)
    assert report.rows_read == report.rows_kept + len(report.skipped)
    assert len(prepared.rows) == 2
    (skipped,) = report.skipped
    assert isinstance(skipped, SkippedRow)
    assert skipped.where == "line 2"
    assert skipped.field == field
    assert skipped.reason
    assert "1 skipped" in report.summary()
    assert "skipped line 2" in report.summary()


def test_messages_errors_in_inline_rows_name_the_row() -> None:
    rows = [GOOD_CHAT, GOOD_CHAT, {"messages": [USER, {"role": "robot", "content": "x"}]}]
    with pytest.raises(RowError) as caught:
        _prepare(rows)
    assert (caught.value.row, caught.value.line, caught.value.field) == (2, None, "messages[1].role")
    assert str(caught.value).startswith("inline rows, row 2, field 'messages[1].role': unknown role 'robot'")


def test_malformed_json_line_is_a_row_error_with_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "data.jsonl", [json.dumps(GOOD_CHAT), "", "", '{"messages": [', json.dumps(GOOD_CHAT)]
    )
    with pytest.raises(RowError) as caught:
        _prepare(str(path))
    assert (caught.value.path, caught.value.line) == (str(path), 4)
    assert "not valid JSON" in str(caught.value)


def test_malformed_json_lines_are_skipped_with_skip(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", [json.dumps(GOOD_CHAT), "{oops", json.dumps(GOOD_CHAT), "[1, 2"])
    prepared = _prepare(str(path), on_bad_rows="skip")
    assert (prepared.report.rows_read, prepared.report.rows_kept) == (4, 2)
    assert [row.where for row in prepared.report.skipped] == ["line 2", "line 4"]
    assert all("not valid JSON" in row.reason for row in prepared.report.skipped)


def test_skip_with_many_bad_rows_keeps_the_counts(tmp_path: Path) -> None:
    lines = []
    for index in range(200):
        row = GOOD_ALPACA if index % 3 else {"instruction": "", "output": "x"}
        lines.append(json.dumps(row))
    path = _write(tmp_path / "data.jsonl", lines)
    prepared = _prepare(str(path), on_bad_rows="skip")
    report = prepared.report
    bad = len(range(0, 200, 3))
    assert (report.rows_read, report.rows_kept, len(report.skipped)) == (200, 200 - bad, bad)
    assert [row.where for row in report.skipped[:3]] == ["line 1", "line 4", "line 7"]
    assert {row.field for row in report.skipped} == {"instruction"}
    assert f"... and {bad - 10} more skipped rows" in report.summary()


def test_all_rows_bad_is_an_error_even_with_skip(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", [json.dumps({"instruction": "", "output": "x"})] * 3)
    with pytest.raises(DatasetError) as caught:
        _prepare(str(path), on_bad_rows="skip")
    message = str(caught.value)
    assert "every one of the 3 rows was bad" in message
    assert "line 1, field 'instruction'" in message
    assert caught.value.path == str(path)
    assert not isinstance(caught.value, RowError)  # a dataset-level failure, not one row's
    assert message.startswith(f"{path}: no row is left to train on")
    assert "\n  rows read: 3\n  rows skipped: 3\n" in message


def test_prepare_dataset_skips_and_reports(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", [json.dumps(GOOD_CHAT), json.dumps({"messages": [USER]})])
    dataset, report = prepare_dataset(DatasetSpec(str(path), on_bad_rows="skip"), chat=True)
    assert len(dataset) == 1
    assert dataset[0]["messages"] == GOOD_CHAT["messages"]
    assert report.skipped == (SkippedRow("line 2", "messages", report.skipped[0].reason),)
    with pytest.raises(RowError):
        prepare_dataset(DatasetSpec(str(path)), chat=True)


def test_row_errors_are_dataset_errors_and_value_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", [json.dumps({"text": ""})])
    with pytest.raises(DatasetError):
        _prepare(str(path))
    with pytest.raises(ValueError):
        _prepare(str(path))


def test_column_renames_apply_before_detection_and_checks() -> None:
    rows = [{"q": "Capital of France?", "a": "Paris"}, {"q": "", "a": "x"}]
    spec = DatasetSpec(rows, columns={"q": "instruction", "a": "output"}, on_bad_rows="skip")
    prepared = convert_rows(load_rows(spec), spec, FormatOptions())
    assert prepared.report.format == "alpaca"
    assert prepared.report.skipped[0].field == "instruction"
    assert rows[0] == {"q": "Capital of France?", "a": "Paris"}


@pytest.mark.parametrize("on_bad_rows", ["error", "skip"])
def test_no_row_that_is_an_object_is_a_row_error(tmp_path: Path, on_bad_rows: str) -> None:
    path = _write(tmp_path / "data.jsonl", ["", '"a string"', "[1, 2]"])
    with pytest.raises(RowError) as caught:
        _prepare(str(path), on_bad_rows=on_bad_rows)
    assert (caught.value.path, caught.value.line) == (str(path), 2)
    assert "no row of the 2 is a JSON object" in str(caught.value)


def test_only_unreadable_lines_with_skip_is_a_row_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", ["{oops", "{still not json"])
    raw = load_rows(DatasetSpec(str(path), on_bad_rows="skip"))
    assert [type(row).__name__ for row in raw.rows] == ["UnreadableRow", "UnreadableRow"]
    with pytest.raises(RowError) as caught:
        _prepare(str(path), on_bad_rows="skip")
    assert caught.value.line == 1
    assert "not valid JSON" in str(caught.value)


def test_skipped_rows_are_counted_by_field_in_the_summary(tmp_path: Path) -> None:
    bad_role = {"messages": [USER, {"role": "bot", "content": "x"}]}
    bad_content = {"messages": [{"role": "user", "content": ""}, ASSISTANT]}
    rows = [GOOD_CHAT, bad_role, bad_role, bad_content]
    path = _write(tmp_path / "data.jsonl", [json.dumps(row) for row in rows] + ["{oops"])
    report = _prepare(str(path), on_bad_rows="skip").report
    assert report.skipped_by_field() == {"messages[].role": 2, "messages[].content": 1, "(the row)": 1}
    assert report.rows_bad == 4
    assert report.rows_excluded == 0
    assert "skipped rows by field: messages[].role 2, messages[].content 1, (the row) 1" in report.summary()


def test_prompt_completion_rows_mixing_strings_and_messages_are_refused() -> None:
    rows = [
        {"prompt": "Sky?", "completion": "Blue."},
        {"prompt": [USER], "completion": [ASSISTANT]},
        {"prompt": "Grass?", "completion": "Green."},
    ]
    with pytest.raises(DatasetFormatError) as caught:
        _prepare(rows)
    message = str(caught.value)
    assert "mixes prompt-completion rows of strings (e.g. row 0) and of messages (e.g. row 1)" in message


def test_prepare_dataset_keeps_tool_calls_and_rows_without_them(tmp_path: Path) -> None:
    tool_row = {
        "messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "content": "12:00"},
            ASSISTANT,
        ],
        "tools": [{"type": "function", "function": {"name": "clock"}}],
    }
    path = _write(tmp_path / "data.jsonl", [json.dumps(GOOD_CHAT), json.dumps(tool_row)])
    dataset, report = prepare_dataset(DatasetSpec(str(path)), chat=True)
    assert report.format == "messages"
    assert dataset.column_names == ["messages", "tools"]
    assert dataset[0] == {"messages": GOOD_CHAT["messages"], "tools": None}
    assert dataset[1]["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "clock", "arguments": {}}}],
    }
    assert json.loads(dataset[1]["tools"]) == tool_row["tools"]
