"""A large JSON Lines file's rows, read when asked for: the file is scanned once for where each row is.

Read whole, a million conversations are gigabytes of Python objects before the first is converted. From
``LAZY_MIN_BYTES`` on, ``trl_sft_kit.data.sources`` reads a ``.jsonl`` file as ``LineRows``: one pass
checks that every line is UTF-8 and keeps the offset, size and number of each non-blank line (24 bytes a
row); a row is parsed each time it is read, with the same errors as the eager reader (``json_line``), so
a line that is not JSON is reported, file and line named, by the first pass that reads every row (the
media check, before detection). The file stays open from the scan on: a file replaced meanwhile (saved
by renaming a new one over it) is still read as it was scanned, and the source's digest, taken again
after the data stage, refuses one changed in place.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import Any

from trl_sft_kit.data.row_store import LazyRows

__all__ = ["LAZY_MIN_BYTES", "LineOrigins", "LineRows", "read_lazily"]

LAZY_MIN_BYTES = 16 << 20
"""From this size on a JSON Lines file is read as ``LineRows`` (where ``os.pread`` exists)."""


def read_lazily(path: Path) -> bool:
    """Whether the JSON Lines file ``path`` is read as ``LineRows``."""
    return hasattr(os, "pread") and path.stat().st_size >= LAZY_MIN_BYTES


class LineRows(LazyRows):
    """The rows of a JSON Lines file: each non-blank line, parsed when it is read.

    Args:
        path: the file.
        skip: a line that is not JSON becomes an ``UnreadableRow`` rather than a ``RowError``.

    Raises:
        RowError: a line that is not UTF-8 (found by the scan).
        DataSourceError: the file cannot be read.
    """

    def __init__(self, path: Path, *, skip: bool = False) -> None:
        from tqdm.auto import tqdm

        from trl_sft_kit.data.sources import utf8_lines_at

        self.name = str(path)
        self.skip = skip
        self.offsets = array("q")
        self.sizes = array("q")
        self.numbers = array("q")
        with tqdm(desc=f"reading {path.name}", unit="row", leave=False, disable=None) as bar:
            for number, offset, size, line in utf8_lines_at(path):
                if line.strip():
                    self.offsets.append(offset)
                    self.sizes.append(size)
                    self.numbers.append(number)
                    bar.update()
        self._handle: Any = path.open("rb")

    def __len__(self) -> int:
        return len(self.numbers)

    def _row(self, index: int) -> Any:
        from trl_sft_kit.data.sources import decode_line, json_line

        number = self.numbers[index]
        raw = os.pread(self._handle.fileno(), self.sizes[index], self.offsets[index])
        line = decode_line(raw, number).removesuffix("\n").removesuffix("\r")
        return json_line(line, self.name, number, skip=self.skip)

    def origins(self) -> LineOrigins:
        """Where each row came from, as ``RawRows.origins`` says."""
        return LineOrigins(self.name, self.numbers)

    def __copy__(self) -> LineRows:
        return self  # read-only, and each read is a new object: a copy is the rows themselves

    def __deepcopy__(self, memo: dict[int, Any]) -> LineRows:
        return self

    def close(self) -> None:
        """Let the file go."""
        self._handle.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()


class LineOrigins(LazyRows):
    """``(file, line, row)`` of each row of a ``LineRows``, made when asked for."""

    def __init__(self, name: str, numbers: array[int]) -> None:
        self._name = name
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def _row(self, index: int) -> tuple[str, int | None, int]:
        return self._name, self._numbers[index], index
