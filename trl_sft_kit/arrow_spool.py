"""``ArrowSpool``: Arrow tables written one by one to a file on disk and read back memory-mapped.

The data stage writes tokenized shards through it (``trl_sft_kit.data.tokenize``) and the kit's packer its
packed rows (``trl_sft_kit.packing.rows``), and ``take_rows`` the rows it mixes or shuffles, so that
none holds a large dataset's tokens in memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["ArrowSpool", "join_tables", "take_rows"]


class ArrowSpool:
    """Tables written one by one to an Arrow stream file on disk, read back memory-mapped.

    The shards (or packed rows) of a large dataset go to disk as they arrive, so this process holds one
    part's tokens at a time, not the whole dataset's; the result is a memory-mapped table. The file lives
    in a private temporary folder that is removed once the table is mapped (Linux keeps a mapped file
    readable after it is unlinked) or when preparation stops (an error, Ctrl-C): nothing is left
    half-written.
    """

    def __init__(self) -> None:
        self._folder: str | None = None
        self._sink: Any = None
        self._writer: Any = None

    def write(self, table: Any) -> None:
        """Append ``table`` (all tables share one schema)."""
        import pyarrow as pa

        if self._writer is None:
            self._folder = tempfile.mkdtemp(prefix="trl-sft-kit-shards-")
            self._sink = pa.OSFile(os.path.join(self._folder, "shards.arrow"), "wb")
            self._writer = pa.ipc.new_stream(self._sink, table.schema)
        self._writer.write_table(table)

    def read(self) -> Any:
        """The tables written, as one memory-mapped Arrow table; the file is removed."""
        import pyarrow as pa

        assert self._writer is not None and self._folder is not None
        self._writer.close()
        self._sink.close()
        self._writer = None
        try:
            with pa.memory_map(os.path.join(self._folder, "shards.arrow")) as source:
                return pa.ipc.open_stream(source).read_all()
        finally:
            self.discard()

    def discard(self) -> None:
        """Close and remove the file, if any (safe to call twice)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
                self._sink.close()
            self._writer = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


TAKE_PART_ROWS = 16_384
"""``take_rows`` gathers this many rows at a time."""

SPOOL_MIN_BYTES = 256 << 20
"""From this many bytes of rows taken on, ``take_rows`` writes its parts to an ``ArrowSpool``."""


def take_rows(table: Any, indices: Any) -> Any:
    """``table.take(indices)`` a part at a time, each part read chunk by chunk of ``table``.

    Arrow's own ``take`` on a table of many chunks (the spooled shards of a large dataset) joins every
    chunk of every column first: a copy of the whole table on top of the rows taken. Here each part of
    ``TAKE_PART_ROWS`` rows takes its rows from the chunks that hold them; when the rows taken are large
    (``SPOOL_MIN_BYTES``, on Linux) the parts go to an ``ArrowSpool`` and the result is memory-mapped.
    The rows are ``table.take(indices)``'s, in that order.
    """
    import sys

    import numpy as np
    import pyarrow as pa

    indices = np.asarray(indices, dtype=np.int64)
    batches = table.to_batches()
    ends = np.cumsum([batch.num_rows for batch in batches], dtype=np.int64)
    row_bytes = table.nbytes / table.num_rows if table.num_rows else 0.0
    large = sys.platform.startswith("linux") and row_bytes * indices.size >= SPOOL_MIN_BYTES

    def parts() -> Iterator[Any]:
        for start in range(0, max(indices.size, 1), TAKE_PART_ROWS):
            wanted = indices[start : start + TAKE_PART_ROWS]
            order = np.argsort(wanted, kind="stable")
            ordered = wanted[order]
            bounds = np.searchsorted(ordered, np.concatenate(([0], ends)))
            runs = [
                pa.Table.from_batches([batch.take(pa.array(ordered[low:high] - (end - batch.num_rows)))])
                for batch, low, high, end in zip(batches, bounds[:-1], bounds[1:], ends, strict=True)
                if high > low
            ]
            gathered = pa.concat_tables(runs).combine_chunks() if runs else table.slice(0, 0)
            back = np.empty_like(order)
            back[order] = np.arange(order.size)
            yield gathered.take(pa.array(back))  # the part's rows in the order asked for

    return join_tables(parts(), to_disk=large)


def join_tables(tables: Iterable[Any], *, to_disk: bool) -> Any:
    """``tables`` (at least one, one schema) as one table: with ``to_disk``, each written to an
    ``ArrowSpool`` as it comes and the whole memory-mapped (removed on an error or Ctrl-C); else
    concatenated."""
    import pyarrow as pa

    if not to_disk:
        return pa.concat_tables(list(tables))
    spool = ArrowSpool()
    try:
        for table in tables:
            spool.write(table)
    except BaseException:
        spool.discard()
        raise
    return spool.read()
