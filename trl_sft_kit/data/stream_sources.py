"""Streamed sources read lazily, one raw row at a time, from their start as often as asked.

JSON Lines and text files are read line by line (a bad line is named with its file and line; with
``on_bad_rows="skip"`` it becomes an ``UnreadableRow`` in its place), CSV files as the strings written, as
``trl_sft_kit.data.sources`` reads them; JSON and Parquet files, hub datasets and ``datasets`` objects go
through ``datasets``' own streaming. Each raw row comes with where it came from (``data.jsonl, line 12``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.file_kinds import data_files
from trl_sft_kit.data.sources import (
    SUPPORTED_SUFFIXES,
    RawRows,
    _looks_like_path,
    csv_records,
    json_lines,
    source_path,
    utf8_lines,
)
from trl_sft_kit.errors import DataSourceError
from trl_sft_kit.specs import InlineRows

if TYPE_CHECKING:
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["Row", "RowStream", "open_stream", "raw_rows"]

Row = tuple[str, Any]
"""A raw row with where it came from (``data.jsonl, line 12``)."""


@attrs.frozen
class RowStream:
    """A source that can be read from its start any number of times, one raw row at a time."""

    name: str
    read: Callable[[], Iterator[Row]] = attrs.field(repr=False)

    def head(self, count: int) -> list[Row]:
        """The first ``count`` rows."""
        return list(itertools.islice(self.read(), count))


def raw_rows(name: str, rows: list[Row]) -> RawRows:
    """Rows read from a stream as ``RawRows`` (each row's place is its label; no line numbers)."""
    return RawRows(name, [row for _, row in rows], [(where, None, i) for i, (where, _) in enumerate(rows)])


def open_stream(spec: DatasetSpec) -> RowStream:
    """A lazy reader of the spec's source.

    Raises:
        DataSourceError: a missing path, a folder without data files, an unreadable hub id.
    """
    source = spec.source
    if isinstance(source, InlineRows):
        rows = source.to_list()
        return RowStream(
            "inline rows", lambda: ((f"inline rows, row {i}", row) for i, row in enumerate(rows))
        )
    if isinstance(source, str):
        path = source_path(source)
        if path.is_dir():
            files, _ = data_files(path, SUPPORTED_SUFFIXES)  # files left out are logged there
            if not files:
                raise DataSourceError(
                    f"folder {str(path)!r} holds no data files ({', '.join(SUPPORTED_SUFFIXES)}).",
                    path=str(path),
                )
            return RowStream(
                str(path), lambda: itertools.chain.from_iterable(_read_file(file, spec) for file in files)
            )
        if path.is_file():
            return RowStream(str(path), lambda: _read_file(path, spec))
        if _looks_like_path(source):
            raise DataSourceError(f"dataset path {source!r} does not exist.", path=source)
        return _hub_stream(source, spec)
    return _object_stream(source, spec, type(source).__name__)


def _read_file(path: Path, spec: DatasetSpec) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".txt"):
        yield from _read_lines(path, spec)
        return
    if suffix == ".csv":  # as the strings written, as sources reads it; not through datasets' pandas
        for line, row in csv_records(_utf8_lines(path), str(path), skip=spec.on_bad_rows == "skip"):
            yield f"{path}, line {line}", row
        return
    import datasets

    builder = {".json": "json", ".parquet": "parquet"}.get(suffix)
    if builder is None:
        raise DataSourceError(
            f"{str(path)!r} is a {suffix or 'suffix-less'} file; the kit streams "
            f"{', '.join(SUPPORTED_SUFFIXES)}.",
            path=str(path),
        )
    table = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True)
    for index, row in enumerate(table):
        yield f"{path}, row {index}", row


def _utf8_lines(path: Path) -> Iterator[str]:
    """The file's lines with their endings (what the csv module reads), each checked to be UTF-8."""
    return (line for _, line in utf8_lines(path))


def _read_lines(path: Path, spec: DatasetSpec) -> Iterator[Row]:
    """JSON Lines or text, one line at a time; lines end at a line feed only, as ``sources`` reads them."""
    if path.suffix.lower() == ".jsonl":
        for number, row in json_lines(path, skip=spec.on_bad_rows == "skip"):
            yield f"{path}, line {number}", row
        return
    for number, ended in utf8_lines(path):
        line = ended.removesuffix("\n").removesuffix("\r")
        if line.strip():
            yield f"{path}, line {number}", {spec.text_field: line}


def _hub_stream(name: str, spec: DatasetSpec) -> RowStream:
    import datasets

    try:
        table = datasets.load_dataset(
            name, spec.config, split=spec.split, revision=spec.revision, streaming=True
        )
    except Exception as exc:
        raise DataSourceError(
            f"could not stream {name!r} as a hub dataset ({type(exc).__name__}: {exc}).", path=name
        ) from exc
    return _object_stream(table, spec, name)


def _object_stream(table: Any, spec: DatasetSpec, name: str) -> RowStream:
    if isinstance(table, Mapping):  # DatasetDict / IterableDatasetDict
        if spec.split not in table:
            raise DataSourceError(
                f"the dataset has no split {spec.split!r}; it has {', '.join(map(repr, table))}."
            )
        table = table[spec.split]
    return RowStream(name, lambda: ((f"{name}, row {i}", row) for i, row in enumerate(table)))
