"""Build packed rows from an Arrow table of tokenized sequences: Arrow table in, Arrow table out.

The gather never loops over tokens in Python. Each packed column is read as one flat value buffer plus
per-row offsets; the sequences (or pieces of them) are laid out in their packed order as a list *view*
(offset and size per piece, no copy), flattened once (one contiguous copy per piece), and the packed rows
are a ``ListArray`` of those values with one offset per row. Every token-aligned column (``input_ids``,
``labels``, masks) goes through the same permutation, so a token keeps its label.

The packed rows are made a part (``PACK_PART_TOKENS``) at a time, each from only the rows it takes, read
chunk by chunk of the input, so that no step copies every token at once; from ``PACK_SPOOL_MIN_TOKENS`` on
the parts are written to an ``ArrowSpool`` and the result is memory-mapped.
"""

from __future__ import annotations

import itertools
import sys
from typing import TYPE_CHECKING

from trl_sft_kit.arrow_spool import join_tables
from trl_sft_kit.errors import DatasetError
from trl_sft_kit.packing.ffd import ffd_order
from trl_sft_kit.packing.protocol import OVERFLOW_MODES, Overflow
from trl_sft_kit.packing.report import PackingReport

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

__all__ = ["SEQ_LENGTHS", "pack_table", "sequence_lengths", "token_columns"]

SEQ_LENGTHS = "seq_lengths"

PACK_PART_TOKENS = 1 << 22
"""Packed rows are gathered a part of about this many tokens at a time."""

PACK_SPOOL_MIN_TOKENS = 1 << 24
"""From this many packed tokens on, the packed parts are written to an Arrow file and memory-mapped."""


def token_columns(table: pa.Table) -> tuple[str, ...]:
    """The columns to pack: ``input_ids`` and every other list column of the same per-row lengths.

    Raises:
        DatasetError: ``input_ids`` is missing, the table is packed already, a column is not a list of
            tokens, or a list column's rows differ in length from ``input_ids``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    if "input_ids" not in names:
        raise DatasetError(
            f"packing needs tokenized rows with an 'input_ids' column (the columns are {names}); "
            "tokenize the dataset first."
        )
    if SEQ_LENGTHS in names:
        raise DatasetError(
            "the dataset has a 'seq_lengths' column, so it is packed already; pack the unpacked rows instead."
        )
    reference = _lengths_of(table.column("input_ids"), "input_ids")
    packed = []
    for name in names:
        column = table.column(name)
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            raise DatasetError(
                f"column {name!r} ({column.type}) is not a list of per-token values, so it cannot be packed; "
                f"drop it first, e.g. dataset.select_columns({['input_ids', 'labels']!r})."
            )
        if (
            name != "input_ids"
            and not pc.all(pc.equal(_lengths_of(column, name), reference), min_count=0).as_py()
        ):
            raise DatasetError(
                f"column {name!r} does not have as many values per row as 'input_ids', so its values "
                "cannot follow the tokens into packed rows; fix or drop that column."
            )
        packed.append(name)
    return tuple(packed)


def sequence_lengths(table: pa.Table, column: str = "input_ids") -> NDArray[np.int64]:
    """The number of tokens in every row of ``column`` (a missing list counts as empty)."""
    return (
        _lengths_of(table.column(column), column).to_numpy(zero_copy_only=False).astype("int64", copy=False)
    )


def pack_table(
    table: pa.Table,
    *,
    max_length: int,
    overflow: Overflow = "truncate",
    indices: NDArray[np.integer] | None = None,
    strategy: str = "ffd",
) -> tuple[pa.Table, PackingReport]:
    """Pack the rows of ``table`` into rows of at most ``max_length`` tokens by global first-fit decreasing.

    Args:
        table: Tokenized sequences: ``input_ids`` and other token-aligned list columns (``labels``, ...).
        max_length: The room of a packed row, in tokens.
        overflow: ``"truncate"`` keeps the first ``max_length`` tokens of a longer sequence and counts the
            rest as truncated; ``"split"`` cuts it into ``max_length`` pieces packed as sequences.
        indices: Which rows of ``table`` form the dataset, in order (a ``datasets`` indices mapping);
            all rows when ``None``.
        strategy: The name the report carries.

    Returns:
        The packed table (the packed columns, then ``seq_lengths``: the lengths of the sequences laid
        out in each row, in order) and its report. Empty sequences are dropped.

    Raises:
        DatasetError: as ``token_columns``.
        ValueError: ``max_length`` < 1 or an unknown ``overflow``.

    Example:
        >>> import pyarrow as pa
        >>> table = pa.table({"input_ids": [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10]]})
        >>> packed, report = pack_table(table, max_length=5)
        >>> packed.to_pydict()
        {'input_ids': [[4, 5, 6, 7, 8], [1, 2, 3, 9, 10]], 'seq_lengths': [[5], [3, 2]]}
        >>> report.rows, report.fill
        (2, 1.0)
    """
    import numpy as np
    import pyarrow as pa

    if isinstance(max_length, bool) or not isinstance(max_length, int | np.integer) or max_length < 1:
        raise ValueError(f"'max_length' must be a positive integer (got {max_length!r}).")
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"'overflow' must be one of {OVERFLOW_MODES} (got {overflow!r}).")
    max_length = int(max_length)
    columns = token_columns(table)
    lengths = sequence_lengths(table)
    rows = np.arange(table.num_rows, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
    lengths = lengths[rows]

    piece_row, piece_start, piece_len = _pieces(lengths, max_length, overflow)
    bins, order = ffd_order(piece_len, max_length)
    layout = order[np.argsort(bins, kind="stable")]  # pieces row by row, longest first within a row
    n_rows = int(bins.max()) + 1 if bins.size else 0
    per_row = np.bincount(bins, minlength=n_rows)
    laid_len = piece_len[layout]
    token_ends = np.cumsum(laid_len)
    row_ends = token_ends[np.cumsum(per_row) - 1] if n_rows else np.empty(0, np.int64)
    row_offsets = np.concatenate(([0], row_ends))

    piece_ends = np.concatenate(([0], np.cumsum(per_row)))  # row r holds pieces [piece_ends[r], [r + 1])

    def parts() -> Iterator[pa.Table]:
        # A part of the packed rows at a time, each gathered from only the rows it takes: never a copy of
        # every token at once (the tokenized columns are often memory-mapped, in many chunks).
        for first, last in _row_parts(row_offsets):
            pieces = slice(int(piece_ends[first]), int(piece_ends[last]))
            laid = layout[pieces]
            offsets = row_offsets[first : last + 1] - row_offsets[first]
            arrays = [
                _gather_rows(
                    table.column(name), rows[piece_row[laid]], piece_start[laid], laid_len[pieces], offsets
                )
                for name in columns
            ]
            seq_offsets = pa.array((piece_ends[first : last + 1] - piece_ends[first]).astype(np.int32))
            arrays.append(pa.ListArray.from_arrays(seq_offsets, pa.array(laid_len[pieces].astype(np.int32))))
            yield pa.Table.from_arrays(arrays, names=[*columns, SEQ_LENGTHS])

    packed = join_tables(parts(), to_disk=spools_packed_rows(int(row_offsets[-1])))

    overlong = lengths > max_length
    report = PackingReport(
        strategy=strategy,
        crosses_boundaries=False,
        max_length=max_length,
        sequences=int(lengths.size),
        rows=n_rows,
        tokens=int(token_ends[-1]) if token_ends.size else 0,
        tokens_truncated=int((lengths[overlong] - max_length).sum()) if overflow == "truncate" else 0,
        sequences_overlong=int(overlong.sum()),
        sequences_cut=int(overlong.sum()) if overflow == "split" else 0,
        sequences_empty=int((lengths == 0).sum()),
    )
    return packed, report


def _lengths_of(column: pa.ChunkedArray, name: str) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise DatasetError(f"column {name!r} must hold token lists to be packed (got {column.type}).")
    lengths = pc.fill_null(pc.list_value_length(column), 0)
    return lengths.combine_chunks() if isinstance(lengths, pa.ChunkedArray) else lengths


def _pieces(
    lengths: NDArray[np.int64], max_length: int, overflow: Overflow
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Row (position in ``lengths``), start and length of every piece to pack; empty rows give none."""
    import numpy as np

    if overflow == "truncate":
        row = np.flatnonzero(lengths > 0)
        return row, np.zeros(row.size, np.int64), np.minimum(lengths[row], max_length)
    count = -(-lengths // max_length)  # 0 for an empty row
    row = np.repeat(np.arange(lengths.size, dtype=np.int64), count)
    first = np.cumsum(count) - count
    start = (np.arange(row.size, dtype=np.int64) - np.repeat(first, count)) * max_length
    return row, start, np.minimum(lengths[row] - start, max_length)


def spools_packed_rows(tokens: int) -> bool:
    """Whether packed rows of ``tokens`` tokens go to an ``ArrowSpool`` (Linux, ``PACK_SPOOL_MIN_TOKENS``)."""
    return sys.platform.startswith("linux") and tokens >= PACK_SPOOL_MIN_TOKENS


def _row_parts(row_offsets: NDArray[np.int64]) -> list[tuple[int, int]]:
    """Packed rows ``[first, last)`` of about ``PACK_PART_TOKENS`` tokens each (one part when no rows)."""
    import numpy as np

    n_rows = row_offsets.size - 1
    if n_rows == 0:
        return [(0, 0)]
    cuts = np.searchsorted(row_offsets, np.arange(PACK_PART_TOKENS, int(row_offsets[-1]), PACK_PART_TOKENS))
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n_rows), [n_rows])))
    return [(int(first), int(last)) for first, last in itertools.pairwise(bounds)]


def _gather_rows(
    column: pa.ChunkedArray,
    rows: NDArray[np.int64],
    starts: NDArray[np.int64],
    sizes: NDArray[np.int64],
    row_offsets: NDArray[np.int64],
) -> pa.Array:
    """``_gather`` of a part of the packed rows, reading only the rows of ``column`` the part takes."""
    import numpy as np
    import pyarrow as pa

    taken, at = np.unique(rows, return_inverse=True)  # sorted: each chunk's rows are one run of them
    # Chunk by chunk: Arrow's take on a chunked list column joins every chunk first, a copy of the column.
    ends = np.cumsum([len(chunk) for chunk in column.chunks], dtype=np.int64)
    bounds = np.searchsorted(taken, np.concatenate(([0], ends)))
    runs = []
    for number, chunk in enumerate(column.chunks):
        if bounds[number + 1] > bounds[number]:
            local = taken[bounds[number] : bounds[number + 1]] - (ends[number] - len(chunk))
            runs.append(chunk.take(pa.array(local)))
    rows_taken = pa.chunked_array(runs, type=column.type) if runs else column.slice(0, 0)
    return _gather(rows_taken, at.astype(np.int64), starts, sizes, row_offsets)


def _gather(
    column: pa.ChunkedArray,
    rows: NDArray[np.int64],
    starts: NDArray[np.int64],
    sizes: NDArray[np.int64],
    row_offsets: NDArray[np.int64],
) -> pa.Array:
    """Packed rows of one column: piece ``i`` is ``sizes[i]`` values of row ``rows[i]`` from ``starts[i]``."""
    import pyarrow as pa

    lists = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    large = pa.types.is_large_list(lists.type)
    offset_type = "int64" if large else "int32"
    absolute = lists.offsets.to_numpy()[rows] + starts
    view = (pa.LargeListViewArray if large else pa.ListViewArray).from_arrays(
        pa.array(absolute.astype(offset_type)), pa.array(sizes.astype(offset_type)), lists.values
    )
    values = view.flatten()
    return type(lists).from_arrays(pa.array(row_offsets.astype(offset_type)), values, type=lists.type)
