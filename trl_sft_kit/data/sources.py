"""Reading training data from files, folders, the hub, ``datasets`` objects and in-memory rows.

JSON Lines, JSON, CSV and text files are read here, line by line, so that a broken line is reported with
its file and line number; Parquet goes through ``datasets``. CSV cells are read as the strings written (no
guessed nulls, numbers or index column). Every source becomes a ``RawRows``: rows in
order, each able to say where it came from. Lines end at a line feed (or CR LF) only: JSON strings may
hold U+2028 and other separators that ``str.splitlines`` would break on.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from trl_sft_kit.data.file_kinds import data_files, left_out_note, left_out_reason, not_regular
from trl_sft_kit.data.line_rows import LineRows, read_lazily
from trl_sft_kit.data.row_store import ChainedRows, is_lazy
from trl_sft_kit.datasets_bars import datasets_bars_off
from trl_sft_kit.errors import DataSourceError, RowError
from trl_sft_kit.formats import json_text
from trl_sft_kit.specs import DatasetSpec, InlineRows

__all__ = [
    "SUPPORTED_SUFFIXES",
    "RawRows",
    "UnreadableRow",
    "json_lines",
    "load_rows",
    "source_path",
    "utf8_lines",
]

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")


@attrs.frozen
class UnreadableRow:
    """A line that cannot be read as a row, kept in its place under ``on_bad_rows="skip"``.

    Conversion reports it as a skipped row with its file and line, so that ``rows_read`` counts it.
    """

    reason: str
    field: str | None = None


@attrs.frozen
class RawRows:
    """Rows of one source before conversion, with where each came from.

    ``origins[i]`` is ``(path, line)`` for row ``i``: ``line`` is 1-based for line-oriented files and
    ``None`` otherwise (then errors give the row number within its file).
    """

    name: str
    rows: Sequence[Any] = attrs.field(repr=False)
    """A list, or for a large JSON Lines file its ``LineRows`` (each row parsed when read: read it once)."""
    origins: Sequence[tuple[str, int | None, int]] = attrs.field(repr=False)
    notes: tuple[str, ...] = ()
    """What the reading itself found worth saying (files of a folder left out); the report repeats it."""
    owned: bool = False
    """Whether ``rows`` is a list the kit made (read from a file, the hub or a ``datasets`` object), so that
    conversion may let each row go once it is converted; a caller's own list is never changed."""

    def __len__(self) -> int:
        return len(self.origins)

    def without_rows(self) -> RawRows:
        """The same source with its rows let go and their places kept: what errors and reports need once
        the rows are converted (a million conversations read from a file are gigabytes)."""
        return attrs.evolve(self, rows=[])

    def label(self, index: int) -> str:
        """``file.jsonl, line 12`` or ``row 12``, for messages."""
        path, line, row = self.origins[index]
        where = f"line {line}" if line is not None else f"row {row}"
        return f"{path}, {where}" if path != self.name else where

    def full_label(self, index: int) -> str:
        """``data.jsonl, line 12``: the label with the source's name, for messages that stand alone."""
        label = self.label(index)
        path = self.origins[index][0]
        return label if path != self.name else f"{self.name}, {label}"

    def where(self, index: int) -> dict[str, Any]:
        """Keyword arguments for ``RowError``: path, row and line of row ``index``."""
        path, line, row = self.origins[index]
        return {"path": path, "row": row, "line": line}


def load_rows(spec: DatasetSpec) -> RawRows:
    """Read every row of the spec's source.

    Raises:
        DataSourceError: missing path, empty file or folder, unsupported file type, unreadable hub id, a
            path that is neither a folder nor a regular file (a named pipe is never opened).
        RowError: a line that is not valid JSON (file and line named; with ``on_bad_rows="skip"`` such a
            line of a JSON Lines file becomes an ``UnreadableRow`` instead), or a file that is not UTF-8.
    """
    source = spec.source
    if isinstance(source, InlineRows):
        rows = source.to_list()
        return RawRows("inline rows", rows, [("inline rows", None, index) for index in range(len(rows))])
    if isinstance(source, str):
        path = source_path(source)
        if path.is_dir():
            return _read_folder(path, spec)
        if path.is_file():
            return _read_file(path, spec)
        if _looks_like_path(source):
            raise DataSourceError(
                f"dataset path {source!r} does not exist. Check the path (relative paths are read from "
                f"{os.getcwd()}), or pass a hub dataset id.",
                path=source,
            )
        return _read_hub(source, spec)
    return _read_dataset_object(source, spec)


def source_path(source: str) -> Path:
    """The source as a local path (``~`` expanded), which may not exist; never a pipe, device or socket.

    Raises:
        DataSourceError: the path names something that is neither a folder nor a regular file.
    """
    path = Path(source).expanduser()
    problem = not_regular(path)
    if problem is not None:
        raise DataSourceError(problem, path=source)
    return path


def is_hub_id(name: str) -> bool:
    """Whether ``name`` has the shape of a Hugging Face Hub id (``org/name`` or ``name``), not of a path.

    The Hub's own rule, ``huggingface_hub``'s ``validate_repo_id``: the kit's one check of hub ids (data
    sources, tokenizers, the model card's ``base_model``).

    >>> is_hub_id("Qwen/Qwen3-0.6B"), is_hub_id("gpt2"), is_hub_id("./data/chat"), is_hub_id("a--b/c")
    (True, True, False, False)
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _looks_like_path(source: str) -> bool:
    """Whether a missing source was meant as a file rather than a hub id (``org/name`` or ``name``)."""
    return source.lower().endswith(SUPPORTED_SUFFIXES) or not is_hub_id(source)


def _is_data_file(path: Path, folder: Path) -> bool:
    """A file of a supported type, not hidden and not inside a hidden folder (``.ipynb_checkpoints``), that
    the kit reads: a regular file, or a link to one inside the folder (see ``data_files``)."""
    hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
    if hidden or path.suffix.lower() not in SUPPORTED_SUFFIXES or path.is_dir():
        return False
    return left_out_reason(path, folder.resolve()) is None


def _read_folder(folder: Path, spec: DatasetSpec) -> RawRows:
    files, left_out = data_files(folder, SUPPORTED_SUFFIXES)
    if not files:
        unread = f" ({left_out_note(folder, left_out)})" if left_out else ""
        raise DataSourceError(
            f"folder {str(folder)!r} holds no data files ({', '.join(SUPPORTED_SUFFIXES)}){unread}; put the "
            "data there or point .dataset() at a file.",
            path=str(folder),
        )
    parts = [_read_file(file, spec) for file in files]
    notes = (left_out_note(folder, left_out),) if left_out else ()
    if any(is_lazy(part.rows) for part in parts):  # one large file makes the folder's rows lazy too
        rows = ChainedRows([part.rows for part in parts])
        origins = ChainedRows([part.origins for part in parts])
        return RawRows(str(folder), rows, origins, notes)
    return RawRows(
        str(folder),
        [row for part in parts for row in part.rows],
        [origin for part in parts for origin in part.origins],
        notes,
        owned=True,
    )


def _read_file(path: Path, spec: DatasetSpec) -> RawRows:
    suffix = path.suffix.lower()
    name = str(path)
    skip = spec.on_bad_rows == "skip"
    if suffix == ".jsonl" and read_lazily(path):
        lines = LineRows(path, skip=skip)
        if not lines:
            raise DataSourceError(f"{name!r} holds no rows; check that it is the file you meant.", path=name)
        return RawRows(name, lines, lines.origins())
    if suffix == ".jsonl":
        rows, origins = _read_jsonl(path, skip=skip)
    elif suffix == ".json":
        rows, origins = _read_json(path, skip=skip)
    elif suffix == ".txt":
        rows, origins = _read_txt(path, spec.text_field)
    elif suffix == ".csv":
        rows, origins = _read_csv(path, skip=skip)
    elif suffix == ".parquet":
        rows, origins = _read_parquet(path)
    else:
        raise DataSourceError(
            f"{name!r} is a {suffix or 'suffix-less'} file; the kit reads {', '.join(SUPPORTED_SUFFIXES)}. "
            "Convert it, or load it yourself and pass a datasets.Dataset or a list of dicts.",
            path=name,
        )
    if not rows:
        raise DataSourceError(f"{name!r} holds no rows; check that it is the file you meant.", path=name)
    return RawRows(name, rows, origins, owned=True)


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise RowError(
            f"the file is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); re-save it "
            "as UTF-8.",
            path=str(path),
            line=line,
        ) from None
    except OSError as exc:
        raise DataSourceError(f"cannot read {str(path)!r}: {exc.strerror or exc}.", path=str(path)) from exc
    return text.removeprefix("\ufeff")


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered from 1, each with its ending, read one at a time (never the whole file
    in memory); a line ends at a line feed only. A UTF-8 byte order mark before the first line is dropped.

    Raises:
        RowError: a line that is not UTF-8 (its line, the byte and its offset in the file named).
        DataSourceError: the file cannot be read.
    """
    for number, _, _, line in utf8_lines_at(path):
        yield number, line


def utf8_lines_at(path: Path) -> Iterator[tuple[int, int, int, str]]:
    """``utf8_lines`` with each line's place in the file: ``(number, offset, size in bytes, line)``."""
    name = str(path)
    offset = 0
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = decode_line(raw, number)
                except UnicodeDecodeError as exc:
                    at = offset + exc.start
                    raise RowError(
                        f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {at}); "
                        "re-save it as UTF-8.",
                        path=name,
                        line=number,
                    ) from None
                yield number, offset, len(raw), line
                offset += len(raw)
    except OSError as exc:
        raise DataSourceError(f"cannot read {name!r}: {exc.strerror or exc}.", path=name) from exc


def decode_line(raw: bytes, number: int) -> str:
    """Line ``number`` of a file as text, a byte order mark dropped from line 1 (``UnicodeDecodeError``)."""
    line = raw.decode("utf-8")
    return line.removeprefix("\ufeff") if number == 1 else line


def json_lines(path: Path, *, skip: bool = False) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSON Lines file with its number, parsed, one at a time.

    Under ``skip`` a line that is not a JSON value the kit reads becomes an ``UnreadableRow`` in its place.

    Raises:
        RowError: such a line, unless ``skip`` (file, line and, for NaN or too deep a value, the field).
    """
    for number, ended in utf8_lines(path):
        line = ended.removesuffix("\n").removesuffix("\r")
        if line.strip():
            yield number, json_line(line, str(path), number, skip=skip)


def json_line(line: str, name: str, number: int, *, skip: bool = False) -> Any:
    """One non-blank line of the JSON Lines file ``name`` (its ending removed), parsed.

    Raises:
        RowError: not a JSON value the kit reads, unless ``skip`` (then an ``UnreadableRow``).
    """
    reason: str | None = None
    field: str | None = None
    try:
        return json_text.loads(line)
    except json.JSONDecodeError as exc:
        reason = (
            f"not valid JSON ({exc.msg} at column {exc.colno}); each line of a .jsonl file must be one "
            "JSON object. Fix or remove the line."
        )
    except json_text.JSONTextError as exc:  # NaN / Infinity, or nested too deep
        reason, field = f"{exc.reason} Fix or remove the line.", json_text.dotted(exc.place) or None
    if not skip:
        raise RowError(reason, path=name, line=number, field=field) from None
    return UnreadableRow(reason, field)


def _read_jsonl(path: Path, *, skip: bool = False) -> tuple[list[Any], list[tuple[str, int | None, int]]]:
    from tqdm.auto import tqdm

    from trl_sft_kit.data.tokenize import PROGRESS_MIN_ROWS

    name = str(path)  # one string for every row's origin
    rows: list[Any] = []
    origins: list[tuple[str, int | None, int]] = []
    # The lines are read one at a time, so the bar knows no total; small files show none.
    big = path.stat().st_size >= PROGRESS_MIN_ROWS * 1024
    with tqdm(desc=f"reading {path.name}", unit="row", leave=False, disable=None if big else True) as bar:
        for number, row in json_lines(path, skip=skip):
            rows.append(row)
            origins.append((name, number, len(rows) - 1))
            bar.update()
    return rows, origins


def _read_json(path: Path, *, skip: bool = False) -> tuple[list[Any], list[tuple[str, int | None, int]]]:
    text = _read_text(path)
    if not text.strip():
        return [], []
    try:
        data = json_text.loads(text)
    except json_text.JSONTextError as exc:
        raise _json_file_error(exc, path) from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            # One object, then another: JSON Lines saved with a .json suffix; read (and report) it as such.
            return _read_jsonl(path, skip=skip)
        raise RowError(
            f"not valid JSON ({exc.msg} at column {exc.colno}); a .json file must hold a list of objects "
            "(or an object whose 'data', 'rows' or 'train' key holds the list).",
            path=str(path),
            line=exc.lineno,
        ) from None
    if isinstance(data, Mapping):
        for key in ("data", "rows", "train", "examples"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data]
    if not isinstance(data, list):
        raise DataSourceError(
            f"{str(path)!r} holds a JSON {type(data).__name__}; it must hold a list of row objects.",
            path=str(path),
        )
    return data, [(str(path), None, index) for index in range(len(data))]


def _json_file_error(exc: json_text.JSONTextError, path: Path) -> RowError:
    """The ``RowError`` for a refused value in a ``.json`` file: its row (when in the row list) and field."""
    place = exc.place
    if len(place) >= 2 and place[0] in ("data", "rows", "train", "examples") and isinstance(place[1], int):
        place = place[1:]
    if place and isinstance(place[0], int):
        field = json_text.dotted(place[1:]) or None
        return RowError(exc.reason, path=str(path), row=place[0], line=exc.line, field=field)
    return RowError(exc.reason, path=str(path), line=exc.line, field=json_text.dotted(place) or None)


def _read_txt(path: Path, text_field: str) -> tuple[list[Any], list[tuple[str, int | None, int]]]:
    name = str(path)
    rows: list[Any] = []
    origins: list[tuple[str, int | None, int]] = []
    for number, ended in utf8_lines(path):
        line = ended.removesuffix("\n").removesuffix("\r")
        if line.strip():
            rows.append({text_field: line})
            origins.append((name, number, len(rows) - 1))
    return rows, origins


def _read_parquet(path: Path) -> tuple[list[Any], list[tuple[str, int | None, int]]]:
    import datasets

    try:
        with datasets_bars_off():
            table = datasets.Dataset.from_parquet(str(path), keep_in_memory=True)
    except Exception as exc:
        raise DataSourceError(f"cannot read {str(path)!r} as parquet: {exc}", path=str(path)) from exc
    rows = table.to_list()
    return rows, [(str(path), None, index) for index in range(len(rows))]


def _read_csv(path: Path, *, skip: bool = False) -> tuple[list[Any], list[tuple[str, int | None, int]]]:
    rows: list[Any] = []
    origins: list[tuple[str, int | None, int]] = []
    for line, row in csv_records(io.StringIO(_read_text(path), newline=""), str(path), skip=skip):
        rows.append(row)
        origins.append((str(path), line, len(rows) - 1))
    return rows, origins


def csv_records(lines: Iterable[str], name: str, *, skip: bool = False) -> Iterator[tuple[int, Any]]:
    """Every record after the header as a dict of strings, exactly as written, with the line it starts on.

    No cell is guessed at: ``NA``, ``None`` or ``nan`` stay those words, ``2`` stays the string ``"2"`` and
    an empty cell is ``""``. Quoted cells may span lines; blank lines are passed over; a quote left open
    or followed by more text in its cell is an error, not a guess. ``lines`` is the file's text (opened
    with ``newline=""``); ``name`` names it in errors.

    Raises:
        DataSourceError: the header repeats a name or has an empty one.
        RowError: a record with more or fewer cells than the header (with ``skip``, an ``UnreadableRow``
            instead), or a record the csv module cannot read.
    """
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    previous = 0
    while True:
        start = previous + 1
        limit = csv.field_size_limit(sys.maxsize)  # a long document in one cell is data, not an error
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise RowError(
                f"the CSV record cannot be read ({exc}); check its quotes.", path=name, line=start
            ) from None
        finally:
            csv.field_size_limit(limit)  # the process-wide limit is the user's: put it back at once
        previous = reader.line_num
        if record is None:
            return
        if not record:
            continue
        if header is None:
            header = _csv_header(record, name)
            continue
        if len(record) == len(header):
            yield start, dict(zip(header, record, strict=True))
            continue
        reason = (
            f"the record has {len(record)} cells but the header has {len(header)}; every record of a CSV "
            "file must have one cell per column (quote cells that hold a comma)."
        )
        if not skip:
            raise RowError(reason, path=name, line=start)
        yield start, UnreadableRow(reason)


def _csv_header(record: list[str], name: str) -> list[str]:
    """The column names of a CSV header, refused when one is empty or repeated (which cell would it be?)."""
    seen: dict[str, int] = {}
    for number, column in enumerate(record, start=1):
        if not column.strip():
            raise DataSourceError(
                f"{name!r}: column {number} of the header has no name; give every column a name in the "
                "first line (or remove the trailing comma).",
                path=name,
            )
        if column in seen:
            raise DataSourceError(
                f"{name!r}: the header names the column {column!r} twice (columns {seen[column]} and "
                f"{number}); give each column its own name in the first line.",
                path=name,
            )
        seen[column] = number
    return record


def _read_hub(name: str, spec: DatasetSpec) -> RawRows:
    import datasets

    try:
        table = datasets.load_dataset(name, spec.config, split=spec.split, revision=spec.revision)
    except Exception as exc:
        raise DataSourceError(
            f"could not load {name!r} as a local path or a hub dataset ({type(exc).__name__}: {exc}). If it "
            "is a file, check the path; if it is a hub id, check the name and that this machine is online.",
            path=name,
        ) from exc
    return _read_dataset_object(table, spec, name=name)


def _read_dataset_object(table: Any, spec: DatasetSpec, name: str | None = None) -> RawRows:
    import datasets

    if isinstance(table, datasets.DatasetDict):
        if spec.split not in table:
            raise DataSourceError(
                f"the DatasetDict has no split {spec.split!r}; it has {', '.join(map(repr, table))}. Pass "
                ".dataset(..., split=<name>).",
            )
        table = table[spec.split]
    if isinstance(table, datasets.IterableDataset):
        raise DataSourceError(
            "an IterableDataset cannot be read in full here; pass a datasets.Dataset (streaming comes later)."
        )
    rows = table.to_list()
    label = name or f"datasets.Dataset ({len(rows)} rows)"
    return RawRows(label, rows, [(label, None, index) for index in range(len(rows))], owned=True)
