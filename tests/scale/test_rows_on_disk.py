"""Large sources kept on disk: JSON Lines rows read when asked for, canonical rows in a store on disk.

Below the thresholds the data stage holds rows as Python lists; from them on (``LAZY_MIN_BYTES``,
``SPOOL_MIN_ROWS``) it holds offsets. Here the thresholds are lowered to zero so that small files take the
large-source route, and every result is compared with the list route's: the same tokens, labels, reports,
errors and canonical rows.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data import line_rows, parallel
from trl_sft_kit.data.line_rows import LineRows
from trl_sft_kit.data.pipeline import prepare_training_data
from trl_sft_kit.data.row_store import ChainedRows, MappedRows, RowStore, RowsView, is_lazy
from trl_sft_kit.data.sources import UnreadableRow, json_lines, load_rows
from trl_sft_kit.errors import DatasetFormatError, RowError
from trl_sft_kit.specs import DatasetSpec
from trl_sft_kit.testing import sample_rows

ODD_ROWS: list[Any] = [
    {"messages": [{"role": "user", "content": "héllo \u2028 wörld"}], "weight": 0.1 + 0.2},
    {"n": 2**70, "nested": {"a": [1, None, True, {"b": -0.0}]}, "t": (1, 2)},
    {"empty": "", "list": []},
    "a bare string",
    None,
]


@pytest.fixture()
def on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JSON Lines file read lazily and every source's canonical rows stored on disk."""
    monkeypatch.setattr(line_rows, "LAZY_MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "SPOOL_MIN_ROWS", 0)


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_row_store_gives_back_what_was_written_also_past_its_write_buffer() -> None:
    store = RowStore()
    rows = [*ODD_ROWS, *({"i": i, "text": "x" * 3000} for i in range(1000))]  # ~3 MB: several flushes
    for row in rows:
        store.append(row)
    assert len(store) == len(rows)
    assert list(store) == rows
    assert store[1]["t"] == (1, 2) and store[1]["n"] == 2**70  # exactly, tuples and big integers too
    assert store[-1] == rows[-1] and store[3:6] == rows[3:6]
    assert store[0] is not store[0]  # a new object at each read: changing one never changes the store
    with pytest.raises(IndexError):
        store[len(rows)]
    assert store.nbytes == sum(len(pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)) for row in rows)
    assert copy.deepcopy(store) is store  # a copy sharing the file would close it for the original
    with pytest.raises(TypeError, match="list\\(store\\)"):
        pickle.dumps(store)
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store[0]


def test_the_store_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read $TMPDIR again
    store = RowStore()
    store.append({"a": 1})
    assert store[0] == {"a": 1}
    assert list(tmp_path.iterdir()) == []  # unlinked as soon as it was opened


def _store_rows(start: int, end: int) -> list[Any]:
    return [_SHARED[at] for at in range(start, end)]


_SHARED: RowStore | None = None


def test_forked_workers_read_the_store_each_at_its_own_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers share the descriptor: ``pread`` reads at a place, so no worker moves another's reads."""
    global _SHARED
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(parallel, "SHARD_ROWS", 7)
    rows = sample_rows("messages", 200)
    _SHARED = RowStore()
    try:
        for row in rows:
            _SHARED.append(row)
        read = [row for shard in parallel.map_shards(_store_rows, len(rows), 2) for row in shard]
    finally:
        _SHARED = None
    assert read == rows


def test_views_select_chain_and_change_rows_without_copying_them() -> None:
    rows = [{"i": i} for i in range(10)]
    view = RowsView(rows, [7, 2, 2, 9])
    assert list(view) == [rows[7], rows[2], rows[2], rows[9]] and view[-1] is rows[9]
    chained = ChainedRows([rows[:3], [], RowsView(rows, [5]), rows[8:]])
    assert list(chained) == [rows[0], rows[1], rows[2], rows[5], rows[8], rows[9]]
    assert [chained[at] for at in range(len(chained))] == list(chained)
    assert chained[2:5] == [rows[2], rows[5], rows[8]]
    mapped = MappedRows(rows, lambda row: {"j": row["i"] * 2})
    assert mapped[4] == {"j": 8} and list(mapped)[9] == {"j": 18}
    assert all(is_lazy(seq) for seq in (view, chained, mapped)) and not is_lazy(rows)


def test_line_rows_are_the_eager_reader_s_rows_and_places(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    lines = [json.dumps(row, ensure_ascii=False) for row in ODD_ROWS if row is not None]
    text = "\ufeff" + lines[0] + "\r\n\n   \n" + "\n".join(lines[1:]) + "\n\n"
    path.write_bytes(text.encode("utf-8"))
    lazy = LineRows(path)
    assert [(number, row) for number, row in zip(lazy.numbers, lazy, strict=True)] == list(json_lines(path))
    eager = load_rows(DatasetSpec(source=str(path)))
    assert not is_lazy(eager.rows)
    assert list(lazy.origins()) == list(eager.origins)
    assert lazy[0]["messages"][0]["content"] == "héllo \u2028 wörld"  # the BOM gone, U+2028 kept


def test_a_bad_line_read_lazily_is_the_eager_error_or_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [{"text": "a"}, {"text": "b"}])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"text": "c"\n{"text": NaN}\n')
    errors = []
    for lazy in (False, True):
        spec = DatasetSpec(source=str(path))
        with pytest.raises(RowError) as caught:
            rows = LineRows(path) if lazy else load_rows(spec).rows
            list(rows)
        errors.append((str(caught.value), caught.value.path, caught.value.line))
    assert errors[0] == errors[1]
    assert errors[0][1:] == (str(path), 3)
    skipped = LineRows(path, skip=True)
    assert isinstance(skipped[2], UnreadableRow) and skipped[3].field == "text"


def test_a_file_not_utf8_is_refused_by_the_scan_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(RowError, match="not UTF-8") as caught:
        LineRows(path)
    assert caught.value.line == 2


def _stage(recipe: SFTRecipe, tokenizer_of: Any) -> Any:
    return prepare_training_data(recipe.training(dataset_num_proc=1), tokenizer_of())


def _same_result(listed: Any, on_disk: Any) -> None:
    assert is_lazy(on_disk.rows) and not is_lazy(listed.rows)  # the routes compared are the two routes
    assert list(on_disk.rows) == listed.rows
    assert on_disk.dataset["input_ids"] == listed.dataset["input_ids"]
    assert on_disk.dataset["labels"] == listed.dataset["labels"]
    assert on_disk.report == listed.report
    assert on_disk.tokenization == listed.tokenization
    assert on_disk.mixture == listed.mixture
    if listed.eval_dataset is not None:
        assert on_disk.eval_dataset["input_ids"] == listed.eval_dataset["input_ids"]
        assert on_disk.eval_tokenization == listed.eval_tokenization


@pytest.mark.parametrize("format", ["messages", "sharegpt", "alpaca", "prompt_completion", "text"])
def test_the_stage_on_disk_gives_the_stage_in_memory_s_rows(
    format: str, data_file: Any, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = SFTRecipe().dataset(str(data_file(format, 60)), eval=0.2).training(max_length=160)
    listed = _stage(recipe, tokenizer_of)
    monkeypatch.setattr(line_rows, "LAZY_MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "SPOOL_MIN_ROWS", 0)
    _same_result(listed, _stage(recipe, tokenizer_of))


def test_renamed_columns_skipped_rows_dropped_media_and_a_folder_on_disk(
    tmp_path: Path, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[Any] = [
        {"question": f"What is {i} plus {i}?", "answer": f"It is {2 * i}.", "images": []} for i in range(30)
    ]
    rows[4] = {"question": "<image>What is shown?", "answer": "A cat.", "images": ["cat.png"]}
    rows[9] = {"question": 7, "answer": "not text"}
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "a.jsonl", rows[:20])
    _write(folder / "b.jsonl", rows[20:])
    recipe = SFTRecipe().dataset(
        str(folder), columns={"question": "prompt", "answer": "completion"}, on_bad_rows="skip", media="drop"
    )
    listed = _stage(recipe, tokenizer_of)
    assert listed.report.rows_read == 30 and len(listed.report.skipped) == 1 and listed.report.media_rows == 1
    monkeypatch.setattr(line_rows, "LAZY_MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "SPOOL_MIN_ROWS", 0)
    _same_result(listed, _stage(recipe, tokenizer_of))


def test_mixed_prompt_shapes_are_refused_on_disk_as_in_memory(
    tmp_path: Path, on_disk: None, tokenizer_of: Any
) -> None:
    turns = {
        "prompt": [{"role": "user", "content": "Hi"}],
        "completion": [{"role": "assistant", "content": "Yo"}],
    }
    rows = [{"prompt": "Hi", "completion": "Hello"}] * 3 + [turns]
    path = _write(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(DatasetFormatError, match=r"line 1\).*line 4\)"):
        prepare_training_data(SFTRecipe().dataset(str(path)), tokenizer_of())


def test_a_large_file_is_read_lazily_by_default(tmp_path: Path) -> None:
    """The thresholds as shipped: a file of ``LAZY_MIN_BYTES`` is read lazily, a smaller one whole."""
    row = json.dumps({"text": "y" * 1000}) + "\n"
    path = tmp_path / "big.jsonl"
    path.write_text(row * (line_rows.LAZY_MIN_BYTES // len(row) + 1), encoding="utf-8")
    assert os.path.getsize(path) >= line_rows.LAZY_MIN_BYTES
    assert is_lazy(load_rows(DatasetSpec(source=str(path))).rows)
    small = _write(tmp_path / "small.jsonl", [{"text": "y"}])
    assert not is_lazy(load_rows(DatasetSpec(source=str(small))).rows)


@pytest.mark.parametrize("spooled", [False, True])
def test_rows_taken_a_part_at_a_time_are_arrow_s_take(monkeypatch: pytest.MonkeyPatch, spooled: bool) -> None:
    """Mixing and shuffling take rows chunk by chunk (``take_rows``): the rows of ``Table.take``, in order."""
    import numpy as np
    import pyarrow as pa

    from trl_sft_kit import arrow_spool

    table = pa.concat_tables(
        pa.table(
            {"input_ids": [[start + i] * (i % 5) for i in range(40)], "n": list(range(start, start + 40))}
        )
        for start in range(0, 400, 40)
    )
    assert table.column("input_ids").num_chunks == 10
    indices = np.random.default_rng(0).integers(0, table.num_rows, 700)  # repeats, every chunk, any order
    monkeypatch.setattr(arrow_spool, "TAKE_PART_ROWS", 64)
    monkeypatch.setattr(arrow_spool, "SPOOL_MIN_BYTES", 0 if spooled else 1 << 60)
    before = pa.total_allocated_bytes()
    taken = arrow_spool.take_rows(table, indices)
    held = pa.total_allocated_bytes() - before
    assert taken.to_pydict() == table.take(pa.array(indices)).to_pydict()
    assert held == 0 if spooled else held > 0  # spooled, the rows are memory-mapped
    assert arrow_spool.take_rows(table, []).num_rows == 0
