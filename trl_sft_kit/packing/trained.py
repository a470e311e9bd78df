"""Drop what would carry no loss before packing: Arrow in, Arrow out, no Python loop over tokens.

Without packing, a row whose tokens carrying loss all lie past ``max_length`` is dropped and counted by
tokenization. With packing the cut happens later, inside the packer, so the same rows (and, when over-long
sequences are split, the pieces of them) would stay as sequences whose labels are all ``-100``: compute
spent and, when every sequence of a row is such, a logged loss of 0. ``drop_untrained`` finds them first:

* ``overflow="truncate"``: a sequence with no token carrying loss among its first ``max_length`` is dropped.
* ``overflow="split"``: each ``max_length`` piece with no such token is dropped from its sequence; the
  pieces left keep their boundaries (only a sequence's last piece can be short), so the packer splits the
  trimmed sequence exactly where it would have split the whole one.

``drop_untrained_rows`` does the same to packed rows after a packer that cuts across sequences
(``wrapped``), where pieces are only known once packed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trl_sft_kit.packing.rows import _gather

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

    from trl_sft_kit.packing.protocol import Overflow

__all__ = ["IGNORE_INDEX", "drop_untrained", "drop_untrained_rows", "trained_counts"]

IGNORE_INDEX = -100
"""The label of a token that carries no loss."""


def trained_counts(
    labels: pa.ChunkedArray, rows: NDArray[np.int64], starts: NDArray[np.int64], sizes: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Labels other than ``-100`` in ``sizes[i]`` values of row ``rows[i]`` from ``starts[i]``, per ``i``.

    Counted chunk by chunk of ``labels``: a table of spooled shards is never copied whole into memory.
    """
    import numpy as np

    counts = np.zeros(rows.size, np.int64)
    ends = np.cumsum([len(chunk) for chunk in labels.chunks], dtype=np.int64)
    which = np.searchsorted(ends, rows, side="right")  # the chunk of each row
    order = np.argsort(which, kind="stable")
    cuts = np.searchsorted(which[order], np.arange(len(ends) + 1))
    for number, chunk in enumerate(labels.chunks):
        at = order[cuts[number] : cuts[number + 1]]
        if not at.size:
            continue
        offsets = chunk.offsets.to_numpy().astype(np.int64)
        flat = chunk.values.to_numpy(zero_copy_only=False)
        running = np.concatenate(([0], np.cumsum(flat != IGNORE_INDEX, dtype=np.int64)))
        first_row = ends[number] - len(chunk)
        begin = offsets[rows[at] - first_row] + starts[at]
        counts[at] = running[begin + sizes[at]] - running[begin]
    return counts


def drop_untrained(
    table: pa.Table,
    columns: tuple[str, ...],
    *,
    max_length: int,
    overflow: Overflow,
    indices: NDArray[np.integer] | None = None,
) -> tuple[pa.Table, int, int]:
    """``table``'s rows (in ``indices`` order) without sequences or pieces that carry no loss.

    Args:
        table: tokenized sequences with ``labels`` among ``columns`` (the token-aligned columns to keep).
        max_length: the room of a packed row.
        overflow: what the packer will do to over-long sequences (``"truncate"`` or ``"split"``).
        indices: which rows form the dataset, in order; all when ``None``.

    Returns:
        The trimmed table (``columns`` only, no indices mapping), the number of whole sequences dropped
        and the number of pieces dropped from sequences that keep others. When nothing is dropped,
        ``table`` itself and two zeros (no copy made; the caller keeps its dataset as it is).
    """
    import numpy as np
    import pyarrow as pa

    from trl_sft_kit.packing.rows import sequence_lengths

    rows = np.arange(table.num_rows, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
    lengths = sequence_lengths(table)[rows]
    labels = table.column("labels")
    if overflow == "truncate":
        trained = trained_counts(labels, rows, np.zeros(rows.size, np.int64), np.minimum(lengths, max_length))
        keep = trained > 0
        if keep.all():  # nothing to drop: no copy of the rows
            return table, 0, 0
        kept = table.select(list(columns)).take(pa.array(rows[keep]))
        return kept, int((~keep).sum()), 0
    count = -(-lengths // max_length)
    piece_row = np.repeat(np.arange(rows.size, dtype=np.int64), count)
    first = np.cumsum(count) - count
    piece_start = (np.arange(piece_row.size, dtype=np.int64) - np.repeat(first, count)) * max_length
    piece_len = np.minimum(lengths[piece_row] - piece_start, max_length)
    useful = trained_counts(labels, rows[piece_row], piece_start, piece_len) > 0
    kept_per_row = np.bincount(piece_row[useful], minlength=rows.size)
    dropped_rows = int((kept_per_row == 0).sum())
    dropped_pieces = int((~useful).sum()) - int(count[kept_per_row == 0].sum())
    if useful.all():
        return table, 0, 0
    row_of = rows[piece_row[useful]]
    start, size = piece_start[useful], piece_len[useful]
    totals = np.bincount(piece_row[useful], weights=size, minlength=rows.size).astype(np.int64)
    row_offsets = np.concatenate(([0], np.cumsum(totals[kept_per_row > 0])))
    arrays = [_gather(table.column(name), row_of, start, size, row_offsets) for name in columns]
    return pa.Table.from_arrays(arrays, names=list(columns)), dropped_rows, dropped_pieces


def drop_untrained_rows(table: pa.Table, indices: NDArray[np.integer] | None = None) -> tuple[pa.Table, int]:
    """Packed rows (in ``indices`` order) without those whose labels are all ``-100``, and how many went."""
    import numpy as np
    import pyarrow as pa

    from trl_sft_kit.packing.rows import sequence_lengths

    rows = np.arange(table.num_rows, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
    lengths = sequence_lengths(table, "labels")[rows]
    keep = trained_counts(table.column("labels"), rows, np.zeros(rows.size, np.int64), lengths) > 0
    return table.take(pa.array(rows[keep])), int((~keep).sum())
