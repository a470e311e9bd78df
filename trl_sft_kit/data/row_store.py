"""Rows kept on disk, not as Python objects: the data stage's memory bounded by the shard for large sources.

A two-turn conversation held as Python dicts and strings takes about 2.5 KiB; a million of them, read and
converted before tokenization starts, set the stage's peak memory. From ``SPOOL_MIN_ROWS`` rows on
(``trl_sft_kit.data.parallel``) conversion writes each canonical row, pickled, to a ``RowStore``: a
temporary file unlinked as soon as it is opened (nothing is left on disk, whatever stops the process),
read back one row at a time with ``os.pread``, so that forked tokenization workers read their own shard
through the same descriptor without sharing a file position. The process holds 8 bytes a row (the
offsets) and the rows it is working on.

The views (``RowsView`` for a hold-out's training rows, ``ChainedRows`` for several sources, ``MappedRows``
for rows changed on the way, like renamed columns) are read-only sequences over other sequences, so that a
selection never copies the rows either.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

__all__ = ["ChainedRows", "LazyRows", "MappedRows", "RowStore", "RowsView", "is_lazy"]

_FLUSH_BYTES = 1 << 20
"""The bytes of pickled rows gathered before they are written to the file."""


class LazyRows(Sequence[Any]):
    """A read-only sequence of rows: ``__len__`` and ``_row`` (one row) are all a subclass gives."""

    def _row(self, index: int) -> Any:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._row(at) for at in range(*index.indices(len(self)))]
        size = len(self)
        at = index + size if index < 0 else index
        if not 0 <= at < size:
            raise IndexError(f"row {index} of {size}")
        return self._row(at)

    def __iter__(self) -> Iterator[Any]:
        for at in range(len(self)):
            yield self._row(at)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self):,} rows>"


class RowStore(LazyRows):
    """Rows appended one by one, pickled into an unlinked temporary file, read back by index.

    Rows come back equal to the rows written (``pickle``), as new objects each time they are read.
    ``append`` before any read; the first read writes what is still gathered.
    """

    def __init__(self) -> None:
        folder = tempfile.mkdtemp(prefix="trl_sft_kit-rows-")
        path = os.path.join(folder, "rows.pickle")
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)  # the open descriptor keeps the file; nothing is left once it is closed
        os.rmdir(folder)
        self._ends = array("q")
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._written = 0

    def append(self, row: Any) -> None:
        """Add ``row`` at the end."""
        data = pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(data))
        if self._pending_bytes >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        view = memoryview(data)
        while view:
            written = os.pwrite(self._descriptor(), view, self._written)
            self._written += written
            view = view[written:]
        self._pending.clear()
        self._pending_bytes = 0

    def _descriptor(self) -> int:
        if self._fd is None:
            raise ValueError("the row store is closed")
        return self._fd

    @property
    def nbytes(self) -> int:
        """The bytes of the rows written."""
        return self._ends[-1] if self._ends else 0

    def __len__(self) -> int:
        return len(self._ends)

    def _row(self, index: int) -> Any:
        if self._pending:
            self._flush()
        start = self._ends[index - 1] if index else 0
        size = self._ends[index] - start
        data = os.pread(self._descriptor(), size, start)
        if len(data) != size:
            raise OSError(f"the row store's file lost row {index} ({len(data)} of {size} bytes read)")
        return pickle.loads(data)

    def __copy__(self) -> RowStore:
        return self  # read-only once written, and each read is a new object: a copy is the store itself

    def __deepcopy__(self, memo: dict[int, Any]) -> RowStore:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(
            "a RowStore holds an open file of this process and cannot be pickled; list(store) gives its rows"
        )

    def close(self) -> None:
        """Let the file go (it is removed from the disk once no forked process holds it either)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


class RowsView(LazyRows):
    """Rows ``indices`` of ``rows``, in that order, without copying them."""

    def __init__(self, rows: Sequence[Any], indices: Sequence[int]) -> None:
        self._rows = rows
        self._indices = array("q", indices)

    def __len__(self) -> int:
        return len(self._indices)

    def _row(self, index: int) -> Any:
        return self._rows[self._indices[index]]


class ChainedRows(LazyRows):
    """The rows of ``parts``, one part after the other."""

    def __init__(self, parts: Sequence[Sequence[Any]]) -> None:
        self._parts = [part for part in parts if len(part)]
        self._starts = array("q", [0])
        for part in self._parts:
            self._starts.append(self._starts[-1] + len(part))

    def __len__(self) -> int:
        return self._starts[-1]

    def _row(self, index: int) -> Any:
        low, high = 0, len(self._parts) - 1
        while low < high:  # the part whose start is the last at or before ``index``
            middle = (low + high + 1) // 2
            if self._starts[middle] <= index:
                low = middle
            else:
                high = middle - 1
        return self._parts[low][index - self._starts[low]]

    def __iter__(self) -> Iterator[Any]:
        for part in self._parts:
            yield from part


class MappedRows(LazyRows):
    """``change(row)`` for each row of ``rows``, made when the row is read."""

    def __init__(self, rows: Sequence[Any], change: Callable[[Any], Any]) -> None:
        self._rows = rows
        self._change = change

    def __len__(self) -> int:
        return len(self._rows)

    def _row(self, index: int) -> Any:
        return self._change(self._rows[index])

    def __iter__(self) -> Iterator[Any]:
        return map(self._change, self._rows)


def is_lazy(rows: Sequence[Any]) -> bool:
    """Whether ``rows`` are read (or made) when asked for, not held: each read costs work, so read once."""
    return isinstance(rows, LazyRows)
