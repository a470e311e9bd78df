"""Data files a hostile tester would write: each is read as written, or refused with file, line and why.

CSV cells stay the strings written; NaN / Infinity and JSON nested too deep are row errors; links out of a
data folder and files that are not regular files are never read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit.data import UnreadableRow, convert_rows, load_rows
from trl_sft_kit.errors import DatasetError, DataSourceError, RowError
from trl_sft_kit.formats import FormatOptions
from trl_sft_kit.specs import DatasetSpec


def _load(source: Any, **options: Any) -> Any:
    return load_rows(DatasetSpec(str(source), **options))


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


# -------------------------------------------------------------------------------------- CSV as written


def test_csv_cells_that_look_like_nulls_or_numbers_stay_the_strings_written(tmp_path: Path) -> None:
    words = ["NA", "None", "N/A", "nan", "NULL", "2", "1e3", "", "true", "#N/A", "-0"]
    body = "".join(f"Say {word!r}.,{word}\n" for word in words)
    path = _csv(tmp_path, "instruction,output\n" + body)
    raw = _load(path)
    assert [row["output"] for row in raw.rows] == words
    assert all(isinstance(value, str) for row in raw.rows for value in row.values())
    assert [raw.where(i)["line"] for i in range(len(words))] == list(range(2, 2 + len(words)))


def test_csv_numbers_reach_the_canonical_rows_as_written(tmp_path: Path) -> None:
    path = _csv(tmp_path, "instruction,output\nWhat is 1 + 1?,2\nSay null.,NULL\nAnd nan?,nan\n")
    spec = DatasetSpec(str(path))
    prepared = convert_rows(load_rows(spec), spec, FormatOptions())
    assert [row["completion"] for row in prepared.rows] == ["2", "NULL", "nan"]
    assert prepared.report.rows_kept == 3


@pytest.mark.parametrize(
    ("text", "line", "cells"),
    [
        ("instruction,output\nfine,ok\nextra,cell,here\n", 3, 3),  # pandas made "extra" an index
        ("instruction,output\nfine,ok\nonly one\n", 3, 1),
        ('instruction,output\n"two\nlines",ok\n\nx,y,z\n', 5, 3),  # the physical line it starts on
    ],
)
def test_csv_record_with_another_cell_count_than_the_header_is_a_row_error(
    tmp_path: Path, text: str, line: int, cells: int
) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(RowError) as caught:
        _load(path)
    error = caught.value
    assert (error.path, error.line) == (str(path), line)
    assert f"{path}, line {line}" in str(error)
    assert f"has {cells} cells but the header has 2" in str(error)


def test_csv_record_with_another_cell_count_is_skipped_and_reported_on_request(tmp_path: Path) -> None:
    path = _csv(tmp_path, "instruction,output\nfine,ok\nextra,cell,here\nalso,fine\n")
    spec = DatasetSpec(str(path), on_bad_rows="skip")
    raw = load_rows(spec)
    assert isinstance(raw.rows[1], UnreadableRow)
    report = convert_rows(raw, spec, FormatOptions()).report
    assert (report.rows_read, report.rows_kept) == (3, 2)
    assert report.skipped[0].where == "line 3" and "3 cells" in report.skipped[0].reason


@pytest.mark.parametrize(
    ("header", "words"),
    [("instruction,output,output", "'output' twice (columns 2 and 3)"), ("instruction,,output", "column 2")],
)
def test_csv_header_with_a_repeated_or_empty_name_is_refused(tmp_path: Path, header: str, words: str) -> None:
    path = _csv(tmp_path, f"{header}\na,b,c\n")
    with pytest.raises(DatasetError) as caught:
        _load(path)
    assert type(caught.value) is DataSourceError
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value) and words in str(caught.value)


def test_csv_cell_longer_than_the_csv_module_limit_is_read(tmp_path: Path) -> None:
    import csv

    long = "word " * 40_000  # 200,000 characters: over the csv module's default 131,072
    path = _csv(tmp_path, f'instruction,output\nSummarise.,"{long}"\n')
    limit = csv.field_size_limit()
    assert _load(path).rows[0]["output"] == long
    assert csv.field_size_limit() == limit  # the process-wide limit is put back


@pytest.mark.parametrize("record", ['"open,quote\n', '"closed" then more,ok\n'])
def test_csv_with_a_broken_quote_names_the_line(tmp_path: Path, record: str) -> None:
    path = _csv(tmp_path, "instruction,output\nfine,ok\n" + record)
    with pytest.raises(RowError) as caught:
        _load(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert "check its quotes" in str(caught.value)


# -------------------------------------------------------------------------------------- NaN / Infinity


def _jsonl(tmp_path: Path, lines: list[str], name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _convert(path: Path, **options: Any) -> Any:
    spec = DatasetSpec(str(path), **options)
    return convert_rows(load_rows(spec), spec, FormatOptions())


FINE = json.dumps({"prompt": "Hi", "completion": "Hello"})
CHAT = (
    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "weight": %s}]}'
)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_weight_in_json_lines_is_a_row_error(tmp_path: Path, constant: str) -> None:
    path = _jsonl(tmp_path, [CHAT % "1.0", CHAT % constant])
    with pytest.raises(RowError) as caught:
        _load(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), 2, "messages[1].weight")
    assert f"{constant} is not a JSON number" in str(error) and "Fix or remove the line" in str(error)


def test_non_finite_score_is_a_row_error_and_skipped_with_its_field(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [FINE, '{"prompt": "Hi", "completion": "Hello", "score": Infinity}', FINE])
    with pytest.raises(RowError) as caught:
        _load(path)
    assert (caught.value.line, caught.value.field) == (2, "score")
    report = _convert(path, on_bad_rows="skip").report
    assert (report.rows_read, report.rows_kept) == (3, 2)
    assert (report.skipped[0].where, report.skipped[0].field) == ("line 2", "score")


@pytest.mark.parametrize("wrapper", [False, True])
def test_non_finite_number_in_a_json_file_names_its_row_and_field(tmp_path: Path, wrapper: bool) -> None:
    bad = '{"prompt": "Hi", "completion": "Hello", "note": "NaN [ in a string", "meta": {"p": [1, NaN]}}'
    rows = f"[\n{FINE},\n{FINE},\n{bad}\n]"
    path = tmp_path / "data.json"
    path.write_text(f'{{"data": {rows}}}' if wrapper else rows, encoding="utf-8")
    with pytest.raises(RowError) as caught:
        _load(path)
    error = caught.value
    assert (error.path, error.row, error.line, error.field) == (str(path), 2, 4, "meta.p[1]")
    assert f"{path}, line 4, field 'meta.p[1]'" in str(error)


def _tool_row(arguments: str) -> str:
    call = {"type": "function", "function": {"name": "add", "arguments": arguments}}
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": "Add 1 and 2."},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": "3"},
                {"role": "assistant", "content": "It is 3."},
            ]
        }
    )


@pytest.mark.parametrize(
    ("arguments", "field", "words"),
    [
        ('{"a": 1, "b": NaN}', "messages[1].tool_calls[0].arguments.b", "NaN is not a JSON number"),
        ('{"a": [Infinity]}', "messages[1].tool_calls[0].arguments.a[0]", "Infinity is not"),
        ('{"a": ' * 3000 + "1" + "}" * 3000, "messages[1].tool_calls[0].arguments", "levels deep"),
        ("[" * 150 + "]" * 150, "messages[1].tool_calls[0].arguments" + "[0]" * 100, "levels deep"),
    ],
)
def test_tool_call_arguments_text_with_non_finite_numbers_or_deep_nesting_is_a_row_error(
    tmp_path: Path, arguments: str, field: str, words: str
) -> None:
    path = _jsonl(tmp_path, [_tool_row('{"a": 1, "b": 2}'), _tool_row(arguments)])
    with pytest.raises(RowError) as caught:
        _convert(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), 2, field)
    assert words in str(error)
    assert _convert(_jsonl(tmp_path, [_tool_row('{"a": 1.5}')], "fine.jsonl")).report.rows_kept == 1


def test_sharegpt_function_call_and_tools_text_refuse_non_finite_numbers(tmp_path: Path) -> None:
    turns = [
        {"from": "human", "value": "Add."},
        {"from": "function_call", "value": '{"name": "add", "arguments": {"a": NaN}}'},
        {"from": "observation", "value": "3"},
        {"from": "gpt", "value": "3."},
    ]
    path = _jsonl(tmp_path, [json.dumps({"conversations": turns})], "sharegpt.jsonl")
    with pytest.raises(RowError) as caught:
        _convert(path)
    assert (caught.value.line, caught.value.field) == (1, "conversations[1].value.arguments.a")
    tools = '[{"type": "function", "function": {"name": "f", "parameters": {"maximum": Infinity}}}]'
    row = {"messages": json.loads(_tool_row("{}"))["messages"], "tools": tools}
    path = _jsonl(tmp_path, [json.dumps(row)], "tools.jsonl")
    with pytest.raises(RowError) as caught:
        _convert(path)
    assert caught.value.field == "tools[0].function.parameters.maximum"


@pytest.mark.parametrize("weight", [float("nan"), float("inf")])
def test_non_finite_weight_read_from_parquet_is_a_row_error(tmp_path: Path, weight: float) -> None:
    from datasets import Dataset

    row = json.loads(CHAT % "1.0")
    row["messages"][1]["weight"] = weight
    path = tmp_path / "data.parquet"
    Dataset.from_list([json.loads(CHAT % "1.0"), row]).to_parquet(str(path))
    with pytest.raises(RowError) as caught:
        _convert(path)
    assert (caught.value.path, caught.value.row, caught.value.field) == (str(path), 1, "messages[1].weight")
    assert "must be a finite number" in str(caught.value)


# -------------------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("levels", [150, 5000])  # 5000: past the interpreter's recursion limit
def test_json_line_nested_too_deep_is_a_row_error(tmp_path: Path, levels: int) -> None:
    deep = '{"prompt": "Hi", "completion": "Hello", "meta": ' + "[" * levels + "]" * levels + "}"
    path = _jsonl(tmp_path, [FINE, deep])
    with pytest.raises(RowError) as caught:
        _load(path)
    assert (caught.value.path, caught.value.line) == (str(path), 2)
    assert "levels deep" in str(caught.value) and "Fix or remove the line" in str(caught.value)
    report = _convert(path, on_bad_rows="skip").report
    assert (report.rows_kept, len(report.skipped)) == (1, 1)


def test_json_nested_a_hundred_levels_is_read(tmp_path: Path) -> None:
    deep = '{"prompt": "Hi", "completion": "Hello", "meta": ' + "[" * 99 + "]" * 99 + "}"
    assert len(_load(_jsonl(tmp_path, [deep])).rows) == 1


def test_json_file_nested_too_deep_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[\n" + FINE + ",\n" + "[" * 5000 + "]" * 5000 + "\n]", encoding="utf-8")
    with pytest.raises(RowError) as caught:
        _load(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert "levels deep" in str(caught.value)
    path.write_text(f'[{FINE},\n{{"prompt": "Hi", "completion": "Hello", "m": {"[" * 120}{"]" * 120}}}]')
    with pytest.raises(RowError) as caught:
        _load(path)
    assert (caught.value.row, caught.value.line, caught.value.field) == (1, 2, "m" + "[0]" * 98)


def test_non_finite_number_in_a_tools_list_is_a_row_error() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"maximum": float("inf")}}}]
    spec = DatasetSpec([{"messages": json.loads(_tool_row("{}"))["messages"], "tools": tools}])
    with pytest.raises(RowError) as caught:
        convert_rows(load_rows(spec), spec, FormatOptions())
    assert (caught.value.row, caught.value.field) == (0, "tools")
    assert "NaN or Infinity" in str(caught.value)


def test_streamed_json_lines_refuse_non_finite_numbers_and_deep_nesting(tmp_path: Path) -> None:
    from trl_sft_kit.data.streaming import open_stream

    deep = '{"prompt": "Hi", "completion": "Hello", "meta": ' + "[" * 5000 + "]" * 5000 + "}"
    for line, field in ((CHAT % "NaN", "messages[1].weight"), (deep, None)):
        path = _jsonl(tmp_path, [FINE, line])
        with pytest.raises(RowError) as caught:
            open_stream(DatasetSpec(str(path), streaming=True)).head(2)
        assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), 2, field)
        skipped = open_stream(DatasetSpec(str(path), streaming=True, on_bad_rows="skip")).head(2)
        assert isinstance(skipped[1][1], UnreadableRow) and skipped[1][1].field == field


# -------------------------------------------------------------------------------------- links and pipes


def _outside_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    return secret


def test_links_out_of_a_data_folder_are_not_followed_and_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("kept line\n", encoding="utf-8")
    (folder / "secrets.txt").symlink_to(_outside_secret(tmp_path))
    (folder / "up.txt").symlink_to(Path("..") / "elsewhere" / "passwd")  # relative, still outside
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.txt").symlink_to(folder / "a.txt")  # stays inside: read
    (folder / "gone.txt").symlink_to(folder / "missing.txt")
    (folder / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (folder / "alias").symlink_to(folder / "sub", target_is_directory=True)  # inside: read once, as sub/
    with caplog.at_level("WARNING", logger="trl_sft_kit"):
        raw = _load(folder)
    assert [row["text"] for row in raw.rows] == ["kept line", "kept line"]
    assert not any("root:" in row["text"] for row in raw.rows)
    (note,) = raw.notes
    assert note.startswith(f"4 paths in {folder} not read: ")
    assert f"{folder / 'more'} is a link to the folder {tmp_path / 'elsewhere'}, outside the folder" in note
    assert (
        f"{folder / 'secrets.txt'} is a link to {tmp_path / 'elsewhere' / 'passwd'}, outside the folder"
        in note
    )
    assert f"{folder / 'up.txt'} is a link" in note and f"{folder / 'gone.txt'} is a link that leads" in note
    assert note in caplog.text
    spec = DatasetSpec(str(folder))
    report = convert_rows(load_rows(spec), spec, FormatOptions()).report
    assert report.notes == (note,) and f"note: {note}" in report.summary()


def test_a_folder_whose_only_data_file_links_outside_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "secrets.txt").symlink_to(_outside_secret(tmp_path))
    with pytest.raises(DataSourceError) as caught:
        _load(folder)
    assert "holds no data files" in str(caught.value) and "outside the folder" in str(caught.value)


def _in_a_thread(work: Any) -> Any:
    """``work()`` run where a blocking open cannot hang the test: it must finish within ten seconds."""
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except DatasetError as exc:  # the test inspects the error
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "reading blocked on the named pipe"
    return outcome[0]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_given_as_data_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    import os

    from trl_sft_kit.data.source_checks import source_problems
    from trl_sft_kit.data.streaming import open_stream

    pipe = tmp_path / "data.jsonl"
    os.mkfifo(pipe)
    for read in (lambda: _load(pipe), lambda: open_stream(DatasetSpec(str(pipe), streaming=True))):
        error = _in_a_thread(read)
        assert type(error) is DataSourceError, error
        assert error.path == str(pipe)
        assert f"{str(pipe)!r} is not a regular file: it is a named pipe (FIFO)" in str(error)
        assert "does not exist" not in str(error)
    ((source, problem),) = source_problems([DatasetSpec(str(pipe))])  # validate() says so before loading
    assert source == str(pipe) and "named pipe" in problem


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_inside_a_folder_is_left_out_and_reported(tmp_path: Path) -> None:
    import os

    from trl_sft_kit.data.streaming import open_stream

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_text(FINE + "\n", encoding="utf-8")
    os.mkfifo(folder / "b.jsonl")
    raw = _in_a_thread(lambda: _load(folder))
    assert len(raw.rows) == 1
    assert raw.notes == (
        f"1 path in {folder} not read: {folder / 'b.jsonl'} is not a regular file: it is a named pipe (FIFO)",
    )
    streamed = _in_a_thread(lambda: open_stream(DatasetSpec(str(folder), streaming=True)).head(5))
    assert [row for _, row in streamed] == [json.loads(FINE)]


def test_non_finite_number_in_tool_call_arguments_given_as_an_object_is_a_row_error() -> None:
    messages = json.loads(_tool_row("{}"))["messages"]
    messages[1]["tool_calls"][0]["function"]["arguments"] = {"a": 1, "b": [float("nan")]}
    spec = DatasetSpec([{"messages": messages}])
    with pytest.raises(RowError) as caught:
        convert_rows(load_rows(spec), spec, FormatOptions())
    assert (caught.value.row, caught.value.field) == (0, "messages[1].tool_calls[0].arguments.b[0]")
    assert "NaN is not a JSON number" in str(caught.value)


def test_streamed_csv_is_read_as_written_too(tmp_path: Path) -> None:
    from trl_sft_kit.data.streaming import open_stream

    path = _csv(tmp_path, "instruction,output\nSay two.,2\nSay null.,NULL\n\nx,y,z\n")
    stream = open_stream(DatasetSpec(str(path), streaming=True))
    assert stream.head(2) == [
        (f"{path}, line 2", {"instruction": "Say two.", "output": "2"}),
        (f"{path}, line 3", {"instruction": "Say null.", "output": "NULL"}),
    ]
    with pytest.raises(RowError) as caught:
        stream.head(3)
    assert (caught.value.path, caught.value.line) == (str(path), 5)
    path.write_bytes(b"\xef\xbb\xbfinstruction,output\nSay hi.,Hi\ncaf\xe9,x\n")
    assert stream.head(1) == [(f"{path}, line 2", {"instruction": "Say hi.", "output": "Hi"})]
    with pytest.raises(RowError) as caught:
        stream.head(2)
    assert (caught.value.line, "UTF-8" in str(caught.value)) == (3, True)
