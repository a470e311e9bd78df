"""The kit's packer gathers a part of the packed rows at a time, spooled to disk for large datasets: the rows
are the ones a single gather makes, whatever the parts, the chunks of the input or the indices."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from trl_sft_kit.packing import rows as packing_rows
from trl_sft_kit.packing.rows import pack_table


def _table(seed: int) -> pa.Table:
    """Sequences of 0 to 60 tokens in three chunks (as a spooled table of shards has), labels aligned."""
    generator = np.random.default_rng(seed)
    chunks = []
    for _ in range(3):
        ids = [generator.integers(0, 1000, generator.integers(0, 60)).tolist() for _ in range(70)]
        labels = [[-100 if value % 3 else value for value in row] for row in ids]
        chunks.append(pa.table({"input_ids": ids, "labels": labels}))
    table = pa.concat_tables(chunks)
    assert table.column("input_ids").num_chunks == 3
    return table


@pytest.mark.parametrize("overflow", ["truncate", "split"])
@pytest.mark.parametrize("spooled", [False, True])
def test_parts_give_the_rows_of_one_gather(
    monkeypatch: pytest.MonkeyPatch, overflow: str, spooled: bool
) -> None:
    table = _table(3)
    indices = np.random.default_rng(4).permutation(table.num_rows)[:180]
    whole, whole_report = pack_table(table, max_length=48, overflow=overflow, indices=indices)  # type: ignore[arg-type]
    assert whole.column("input_ids").num_chunks == 1  # these rows fit one part
    monkeypatch.setattr(packing_rows, "PACK_PART_TOKENS", 100)
    monkeypatch.setattr(packing_rows, "PACK_SPOOL_MIN_TOKENS", 0 if spooled else 1 << 60)
    before = pa.total_allocated_bytes()
    parts, report = pack_table(table, max_length=48, overflow=overflow, indices=indices)  # type: ignore[arg-type]
    held = pa.total_allocated_bytes() - before  # what the packed rows take of this process's Arrow memory
    assert parts.column("input_ids").num_chunks > 10
    assert parts.to_pydict() == whole.to_pydict()
    assert report == whole_report
    # Spooled, the rows are read back memory-mapped: none of their buffers is in this process's memory.
    assert held == 0 if spooled else held > parts.nbytes // 2


def test_no_rows_pack_into_an_empty_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing_rows, "PACK_SPOOL_MIN_TOKENS", 0)
    empty = pa.table({"input_ids": pa.array([[], []], pa.list_(pa.int64()))})
    packed, report = pack_table(empty, max_length=8)
    assert packed.num_rows == 0 and packed.column_names == ["input_ids", "seq_lengths"]
    assert report.sequences_empty == 2


def test_part_bounds_cover_every_row_once() -> None:
    offsets = np.array([0, 5, 10, 300, 301, 302, 900])
    parts = packing_rows._row_parts(offsets)
    assert parts[0][0] == 0 and parts[-1][1] == 6
    assert all(last > first for first, last in parts)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
