"""Data files a hostile tester would write: each is read as written, or refused with file, line and why.

CSV cells stay the strings written; NaN / Infinity and JSON nested too deep are row errors; links out of a
data folder and files that are not regular files are never read.
"""

from __future__ import annotations

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
