"""Reading rows from every kind of source, and the errors for sources that cannot be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit.data import SUPPORTED_SUFFIXES, convert_rows, load_rows
from trl_sft_kit.errors import DataSourceError, RowError
from trl_sft_kit.formats import FormatOptions
from trl_sft_kit.specs import DatasetSpec
from trl_sft_kit.testing import sample_rows

REPO = Path(__file__).resolve().parents[2]
ALPACA = sample_rows("alpaca", 5)
MESSAGES = sample_rows("messages", 4)


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _load(source: Any, **options: Any) -> Any:
    return load_rows(DatasetSpec(source, **options))


# -------------------------------------------------------------------------------------- files


def test_jsonl(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "a.jsonl", ALPACA)
    raw = _load(str(path))
    assert raw.rows == ALPACA
    assert raw.name == str(path)
    assert [raw.where(i)["line"] for i in range(len(raw))] == [1, 2, 3, 4, 5]
    assert raw.label(2) == "line 3"


def test_jsonl_line_numbers_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    lines = ["", json.dumps(ALPACA[0]), "   ", "", json.dumps(ALPACA[1]), json.dumps(ALPACA[2]), ""]
    path.write_bytes("\r\n".join(lines).encode())
    raw = _load(path)
    assert raw.rows == ALPACA[:3]
    assert [raw.where(i)["line"] for i in range(3)] == [2, 5, 6]


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    """U+2028, U+2029 and U+0085 are legal inside JSON strings; they do not end a JSON Lines line."""
    rows = [{"text": "one\u2028two"}, {"text": "three\u2029four\x85five"}, {"text": "six"}]
    path = _write_jsonl(tmp_path / "seps.jsonl", rows)
    raw = _load(path)
    assert raw.rows == rows
    assert [raw.where(i)["line"] for i in range(3)] == [1, 2, 3]


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
    raw = _load(path)
    assert raw.rows == ALPACA
    assert raw.where(3) == {"path": str(path), "row": 3, "line": None}
    assert raw.label(3) == "row 3"


@pytest.mark.parametrize("key", ["data", "rows", "train", "examples"])
def test_json_object_with_a_list_of_rows(tmp_path: Path, key: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"version": 2, key: ALPACA}), encoding="utf-8")
    assert _load(path).rows == ALPACA


def test_json_single_object_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(ALPACA[0]), encoding="utf-8")
    assert _load(path).rows == [ALPACA[0]]


def test_json_lines_saved_as_json(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "lines.json", ALPACA)
    raw = _load(path)
    assert raw.rows == ALPACA
    assert raw.where(4)["line"] == 5


def test_json_lines_saved_as_json_reports_the_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(ALPACA[0]) + "\n" + json.dumps(ALPACA[1]) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(RowError) as caught:
        _load(path)
    assert caught.value.line == 3
    assert caught.value.path == str(path)


def test_broken_json_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b",,}\n]\n', encoding="utf-8")
    with pytest.raises(RowError) as caught:
        _load(path)
    assert caught.value.line == 3
    assert f"{path}, line 3" in str(caught.value)


def test_json_holding_a_scalar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scalar.json"
    path.write_text("42", encoding="utf-8")
    with pytest.raises(DataSourceError, match="list of row objects"):
        _load(path)


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('instruction,input,output\nSay hi.,,Hi\n"Add, please.",1 2,3\n', encoding="utf-8")
    raw = _load(path)
    assert [row["instruction"] for row in raw.rows] == ["Say hi.", "Add, please."]
    assert [row["output"] for row in raw.rows] == ["Hi", "3"]
    assert [raw.where(i)["line"] for i in range(2)] == [2, 3]
    prepared = convert_rows(raw, DatasetSpec(str(path)), FormatOptions())
    assert prepared.report.format == "alpaca"


def test_csv_line_numbers_follow_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text('instruction,output\n"Line one\nline two",A\n\nSecond,B\nThird,\n', encoding="utf-8")
    raw = _load(path)
    assert [row["instruction"] for row in raw.rows] == ["Line one\nline two", "Second", "Third"]
    assert [raw.where(i)["line"] for i in range(3)] == [2, 5, 6]
    spec = DatasetSpec(str(path))
    with pytest.raises(RowError) as caught:
        convert_rows(raw, spec, FormatOptions())
    assert (caught.value.line, caught.value.field) == (6, "output")


def test_parquet(tmp_path: Path) -> None:
    from datasets import Dataset

    path = tmp_path / "a.parquet"
    Dataset.from_list(MESSAGES).to_parquet(str(path))
    raw = _load(path)
    assert len(raw) == len(MESSAGES)
    assert raw.rows[0]["messages"][0]["content"] == MESSAGES[0]["messages"][0]["content"]
    assert raw.where(1) == {"path": str(path), "row": 1, "line": None}
    prepared = convert_rows(raw, DatasetSpec(str(path)), FormatOptions())
    assert prepared.report.format == "messages"
    assert [row["messages"] for row in prepared.rows] == [row["messages"] for row in MESSAGES]


def test_txt_one_row_per_non_empty_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("First line.\n\n  \nSecond line.\r\nThird.", encoding="utf-8")
    raw = _load(path)
    assert raw.rows == [{"text": "First line."}, {"text": "Second line."}, {"text": "Third."}]
    assert [raw.where(i)["line"] for i in range(3)] == [1, 4, 5]
    body = _load(path, text_field="body")
    assert body.rows[0] == {"body": "First line."}
    prepared = convert_rows(body, DatasetSpec(str(path), text_field="body"), FormatOptions(text_field="body"))
    assert prepared.rows[1] == {"text": "Second line."}


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "UPPER.JSONL", ALPACA[:2])
    assert _load(path).rows == ALPACA[:2]


def test_path_like_and_home_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_jsonl(tmp_path / "home" / "data.jsonl", ALPACA[:1])
    assert _load(path).rows == ALPACA[:1]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _load("~/data.jsonl").rows == ALPACA[:1]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".txt"])
def test_utf8_bom_is_accepted(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bom{suffix}"
    body = "Hello.\n" if suffix == ".txt" else json.dumps({"text": "Hello."}) + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert _load(path).rows == [{"text": "Hello."}]


def test_utf8_bom_is_accepted_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext\nHello.\n")
    assert _load(path).rows == [{"text": "Hello."}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".txt", ".csv"])
def test_non_utf8_bytes_give_a_row_error_with_the_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin1{suffix}"
    if suffix == ".csv":
        text = "text\nfine\ncaf\xe9\n"
        line = 3
    elif suffix == ".txt":
        text = "fine\n\ncaf\xe9\n"
        line = 3
    else:
        text = json.dumps({"text": "fine"}) + "\n\n" + '{"text": "caf\xe9"}\n'
        line = 3
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(RowError) as caught:
        _load(path)
    assert caught.value.line == line
    assert caught.value.path == str(path)
    assert "UTF-8" in str(caught.value)
    if suffix in (".jsonl", ".txt"):  # read a line at a time: the offset still counts from the file's start
        offset = text.encode("latin-1").index(0xE9)
        assert f"at offset {offset})" in str(caught.value)


# -------------------------------------------------------------------------------------- folders


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    _write_jsonl(folder / "b.jsonl", [{"text": "b1"}, {"text": "b2"}])
    _write_jsonl(folder / "a.jsonl", [{"text": "a1"}])
    _write_jsonl(folder / "sub" / "c.jsonl", [{"text": "c1"}])
    (folder / "sub" / "notes.md").write_text("not data", encoding="utf-8")
    (folder / "z.txt").write_text("z1\n", encoding="utf-8")
    raw = _load(folder)
    assert [row["text"] for row in raw.rows] == ["a1", "b1", "b2", "c1", "z1"]
    assert raw.name == str(folder)
    assert raw.label(2) == f"{folder / 'b.jsonl'}, line 2"
    assert raw.where(3) == {"path": str(folder / "sub" / "c.jsonl"), "row": 0, "line": 1}
    spec = DatasetSpec(str(folder))
    assert convert_rows(raw, spec, FormatOptions()).report.rows_kept == 5


def test_folder_skips_hidden_files_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    _write_jsonl(folder / "train.jsonl", [{"text": "kept"}])
    _write_jsonl(folder / ".ipynb_checkpoints" / "train-checkpoint.jsonl", [{"text": "stale copy"}])
    _write_jsonl(folder / ".hidden.jsonl", [{"text": "hidden"}])
    assert _load(folder).rows == [{"text": "kept"}]


def test_errors_inside_a_folder_name_the_inner_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    _write_jsonl(folder / "a.jsonl", [{"text": "fine"}])
    bad = folder / "sub" / "b.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(RowError) as caught:
        _load(folder)
    assert caught.value.path == str(bad)
    assert caught.value.line == 2
    assert f"{bad}, line 2" in str(caught.value)

    bad.write_text('{"text": "fine"}\n{"text": ""}\n', encoding="utf-8")
    spec = DatasetSpec(str(folder))
    with pytest.raises(RowError) as converted:
        convert_rows(load_rows(spec), spec, FormatOptions())
    assert (converted.value.path, converted.value.line, converted.value.field) == (str(bad), 2, "text")


def test_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.md").write_text("nothing here", encoding="utf-8")
    with pytest.raises(DataSourceError) as caught:
        _load(folder)
    assert str(folder) in str(caught.value)
    assert caught.value.path == str(folder)


# -------------------------------------------------------------------------------------- in memory


def test_inline_rows() -> None:
    raw = _load(ALPACA)
    assert raw.rows == ALPACA
    assert raw.label(1) == "row 1"
    raw.rows[0]["instruction"] = "changed"  # the spec's rows are frozen; load_rows hands out copies
    assert _load(ALPACA).rows[0]["instruction"] == ALPACA[0]["instruction"]


def test_datasets_dataset() -> None:
    from datasets import Dataset

    raw = _load(Dataset.from_list(ALPACA))
    assert [row["output"] for row in raw.rows] == [row["output"] for row in ALPACA]
    assert "datasets.Dataset" in raw.name
    assert raw.where(2)["row"] == 2


def test_dataset_dict_split() -> None:
    from datasets import Dataset, DatasetDict

    table = DatasetDict({"train": Dataset.from_list(ALPACA), "test": Dataset.from_list(ALPACA[:2])})
    assert len(_load(table)) == len(ALPACA)
    assert len(_load(table, split="test")) == 2
    with pytest.raises(DataSourceError) as caught:
        _load(table, split="validation")
    message = str(caught.value)
    assert "'validation'" in message
    assert "'train'" in message
    assert "'test'" in message


# -------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("name", ["missing.jsonl", "nowhere/data.json", "./data", "../x"])
def test_missing_path_is_named(tmp_path: Path, name: str) -> None:
    source = str(tmp_path / name) if not name.startswith(".") else name
    with pytest.raises(DataSourceError) as caught:
        _load(source)
    assert repr(source) in str(caught.value)
    assert caught.value.path == source


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".txt", ".csv", ".parquet"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_text("\n\n" if suffix in (".jsonl", ".txt") else "", encoding="utf-8")
    with pytest.raises(DataSourceError) as caught:
        _load(path)
    assert str(path) in str(caught.value)


def test_empty_json_list(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DataSourceError, match="holds no rows"):
        _load(path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataSourceError) as caught:
        _load(path)
    message = str(caught.value)
    assert str(path) in message
    for suffix in SUPPORTED_SUFFIXES:
        assert suffix in message


def test_hub_id_offline_fails_fast_and_names_the_id(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from trl_sft_kit.data import load_rows
        from trl_sft_kit.errors import DataSourceError
        from trl_sft_kit.specs import DatasetSpec
        try:
            load_rows(DatasetSpec("some-org/surely-not-cached-sft-data"))
        except DataSourceError as exc:
            print("ERROR", exc.path, "|", exc)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ERROR some-org/surely-not-cached-sft-data |"), result.stdout
    assert "'some-org/surely-not-cached-sft-data'" in result.stdout
    assert "online" in result.stdout


def test_full_labels_name_the_file_once(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "a.jsonl", ALPACA[:2])
    raw = _load(path)
    assert (raw.label(1), raw.full_label(1)) == ("line 2", f"{path}, line 2")
    _write_jsonl(tmp_path / "b.jsonl", ALPACA[:1])
    folder = _load(tmp_path)
    assert folder.full_label(2) == folder.label(2) == f"{tmp_path / 'b.jsonl'}, line 1"
    inline = _load(ALPACA[:1])
    assert inline.full_label(0) == "inline rows, row 0"


def test_conversion_lets_the_rows_it_read_go_and_never_touches_a_callers_list(tmp_path: Path) -> None:
    """Rows read from a file are released one by one as they are converted (raw and canonical rows are
    never both whole in memory); a list the caller built is left exactly as it was."""
    options = FormatOptions(chat=True)
    read = _load(_write_jsonl(tmp_path / "a.jsonl", MESSAGES))
    assert read.owned
    prepared = convert_rows(read, DatasetSpec("a.jsonl"), options)
    assert len(prepared.rows) == len(MESSAGES)
    assert read.rows == [None] * len(MESSAGES)
    assert read.label(3) == "line 4"  # the places stay for the errors and reports that follow

    from trl_sft_kit.data.sources import RawRows

    mine = [dict(row) for row in MESSAGES]
    given = RawRows("mine", mine, [("mine", None, index) for index in range(len(mine))])
    assert not given.owned
    assert len(convert_rows(given, DatasetSpec("mine"), options).rows) == len(MESSAGES)
    assert mine == MESSAGES
