"""From a ``DatasetSpec`` to canonical rows: read, rename columns, detect the format, convert, check."""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.media import handle_media
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.row_store import MappedRows, RowStore, is_lazy
from trl_sft_kit.data.sources import RawRows, UnreadableRow, load_rows
from trl_sft_kit.errors import DatasetError, DatasetFormatError, RowError
from trl_sft_kit.formats import (
    Detection,
    FormatOptions,
    RowExcludedError,
    convert_row,
    detect_format,
    format_registration,
)
from trl_sft_kit.specs import DatasetSpec

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "PreparedRows",
    "bad_row",
    "convert_rows",
    "detect_spec_format",
    "prepare_dataset",
    "rename_columns",
    "to_dataset",
]


class PreparedRows:
    """Canonical rows with their report."""

    def __init__(
        self, rows: Sequence[dict[str, Any]], report: DatasetReport, kept: Sequence[int] | None = None
    ) -> None:
        self.rows = rows
        """A list, or for a large source a ``RowStore`` on disk (``trl_sft_kit.data.row_store``)."""
        self.report = report
        self.kept = kept if kept is not None else range(len(rows))
        """The index in the source of each kept row."""


def rename_columns(raw: RawRows, spec: DatasetSpec) -> RawRows:
    """The rows with their fields renamed by ``spec.columns`` (``{"question": "instruction"}``)."""
    if not spec.columns:
        return raw
    mapping = dict(spec.columns)

    def renamed(row: Any) -> Any:
        if isinstance(row, Mapping):
            return {mapping.get(key, key): value for key, value in row.items()}
        return row

    if is_lazy(raw.rows):  # rows read when asked for are renamed as they are read
        return attrs.evolve(raw, rows=MappedRows(raw.rows, renamed))
    return attrs.evolve(raw, rows=[renamed(row) for row in raw.rows], owned=True)


def detect_spec_format(raw: RawRows, spec: DatasetSpec, options: FormatOptions) -> Detection:
    """Detect (or take the forced) format of already-read rows."""
    return detect_format(
        raw.rows, len(raw), options, forced=spec.format, source=raw.name, row_label=raw.label
    )


def convert_rows(raw: RawRows, spec: DatasetSpec, options: FormatOptions) -> PreparedRows:
    """Detect the format and convert every row, stopping at the first bad row or skipping and counting.

    A row its format leaves out on purpose (``RowExcludedError``: a KTO row labelled false) is counted among
    the skipped rows, as a good row left out, whatever ``on_bad_rows`` says.

    Raises:
        DatasetFormatError: see ``detect_format``; also prompt-completion rows that mix strings and
            messages, which TRL cannot train on together.
        RowError: a bad row, when ``spec.on_bad_rows == "error"``; names file, line or row, and field.
            Also when none at all is a JSON object.
        DatasetError: no row is left: every row was bad or left out (the source and the counts named).
        PluginError: a third-party detector failed on a row, or made a row that is not canonical.
        MediaError: rows hold images, videos or audio and ``spec.media`` does not say to drop them
            (``trl_sft_kit.data.media``); checked before detection, so for every format.
    """
    raw = rename_columns(raw, spec)
    kept_rows, media_rows, media_dropped = handle_media(
        raw.rows, spec.media, source=raw.name, where=raw.where
    )
    raw = attrs.evolve(raw, rows=kept_rows, owned=raw.owned or kept_rows is not raw.rows)
    if raw.rows and not any(isinstance(row, Mapping) for row in raw.rows):
        try:
            _as_object(raw.rows[0])
        except RowError as exc:
            raise RowError(
                f"{exc.reason.rstrip('.')}; no row of the {len(raw)} is a JSON object, so there is no format "
                "to detect and nothing to train on.",
                **raw.where(0),
            ) from None
    detection = detect_spec_format(raw, spec, options)
    registration = format_registration(detection.format)
    from trl_sft_kit.data.parallel import spools_to_disk
    from trl_sft_kit.data.tokenize import progress

    # A large source's canonical rows go to disk as they are made: the stage holds offsets, not rows.
    rows: list[dict[str, Any]] | RowStore = RowStore() if spools_to_disk(len(raw)) else []
    kept: list[int] | array[int] = array("q") if isinstance(rows, RowStore) else []
    skipped: list[SkippedRow] = []
    shapes: dict[bool, int] = {}  # prompt-completion rows: the first of messages (True), of strings (False)
    rows_in = raw.rows
    for index, row in enumerate(progress(rows_in, "converting")):
        try:
            converted = convert_row(registration, _as_object(row), options, raw.full_label(index))
            if "prompt" in converted:
                shapes.setdefault(isinstance(converted["prompt"], list), len(rows))
            rows.append(converted)
            kept.append(index)
        except RowExcludedError as exc:
            skipped.append(SkippedRow(raw.label(index), exc.field, exc.reason, bad=False))
        except RowError as exc:
            skipped.append(bad_row(exc, raw, index, spec.on_bad_rows, f"format {detection.format!r}"))
        if raw.owned and isinstance(rows_in, list):  # the row read is let go as its canonical row is made
            rows_in[index] = None
    report = DatasetReport(
        source=raw.name,
        format=detection.format,
        canonical=detection.canonical,
        detection=detection.describe(),
        rows_read=len(raw),
        rows_kept=len(rows),
        skipped=tuple(skipped),
        notes=raw.notes,
        media_rows=media_rows,
        media_dropped=media_dropped,
    )
    if not rows:
        what = "bad" if all(row.bad for row in skipped) else "bad or left out by the format"
        raise DatasetError(
            f"{raw.name}: no row is left to train on: every one of the {len(raw)} rows was {what}.\n"
            f"  rows read: {len(raw)}\n  rows skipped: {len(skipped)}\n  first skipped: {skipped[0]}",
            path=raw.name,
        )
    _check_one_shape(shapes, kept, raw)
    return PreparedRows(rows, report, kept)


def bad_row(exc: RowError, raw: RawRows, index: int, on_bad_rows: str, kind: str) -> SkippedRow:
    """A row that could not be converted: the skipped row to count, or its error with its place.

    Args:
        exc: why the row could not be converted.
        kind: what the rows were read as, for the message (``format 'sharegpt'``).

    Returns:
        The ``SkippedRow`` of ``exc``, when ``on_bad_rows`` is ``"skip"``.

    Raises:
        RowError: unless the rows are skipped: ``exc`` with the row's file, line and row, and what to do.
    """
    if on_bad_rows == "skip":
        return SkippedRow(raw.label(index), exc.field, exc.reason)
    raise RowError(
        f"{exc.reason.rstrip('.')} ({kind}). Fix the row, or pass on_bad_rows='skip' to leave such rows "
        "out (they are counted and reported).",
        field=exc.field,
        **raw.where(index),
    ) from None


def _check_one_shape(shapes: Mapping[bool, int], kept: Sequence[int], raw: RawRows) -> None:
    """Prompt-completion rows are all strings or all messages: TRL tokenizes a dataset one way.

    ``shapes`` holds the first converted row whose prompt is a list of messages (``True``) and the first
    whose prompt is a string (``False``).
    """
    if len(shapes) < 2:
        return
    first_messages = raw.label(kept[shapes[True]])
    first_strings = raw.label(kept[shapes[False]])
    raise DatasetFormatError(
        f"{raw.name} mixes prompt-completion rows of strings (e.g. {first_strings}) and of messages (e.g. "
        f"{first_messages}); TRL trains a dataset of one kind. Write every prompt and completion the same "
        "way, or split the data.",
        path=raw.name,
    )


def _as_object(row: Any) -> Mapping[str, Any]:
    """The row itself, or a ``RowError`` when it is a line that was not JSON or is not a JSON object."""
    if isinstance(row, UnreadableRow):
        raise RowError(row.reason, field=row.field)
    if not isinstance(row, Mapping):
        raise RowError(f"a row must be a JSON object (got {type(row).__name__}).")
    return row


MESSAGE_COLUMNS = ("messages", "prompt", "completion")
"""Canonical columns that may hold lists of messages."""


def to_dataset(rows: Sequence[dict[str, Any]]) -> Dataset:
    """A ``datasets.Dataset`` of canonical rows that reads every message back as it was written.

    Arrow gives all the rows of a column one type: read back, a message lacking a key another message has
    (``tool_calls``, ``name``, ...) gets that key as null, and tool-call arguments of different shapes cannot
    be stored at all. So when any message has more than ``role`` and ``content``, the message columns use
    the ``Json`` feature of ``datasets`` (>= 4.7, the form TRL documents for tool calls), each message
    written by the kit (``datasets`` would round floats to 10 digits); otherwise plain structs. Every
    column that any row has is kept (``Dataset.from_list`` reads the first row's keys only).

    ``datasets`` reads ``Json`` back with pandas' fast parser, which keeps 15 digits after a decimal
    point and reads no integer outside 64 bits. So floats are written in scientific notation
    (``2.2552157890716e-4``, not ``0.00022552157890716``, whose last two digits it would drop) and come
    back at most a few units in the last place off (``442.77543`` as ``442.77543000000003``), subnormal
    floats (below ``2.2e-308``) maybe as ``0.0``; an integer outside ``[-2**63, 2**64)`` is written as
    the nearest float, since written as it is ``datasets`` would keep the whole message as one JSON
    string, or read back another integer. ``json_read_back_problems`` finds the rows whose numbers come
    back changed.

    Raises:
        DatasetError: messages need the ``Json`` feature and the installed ``datasets`` is older than 4.7.
    """
    import datasets

    columns = list(dict.fromkeys(key for row in rows for key in row))
    data = {key: [row.get(key) for row in rows] for key in columns}
    if not any(key in MESSAGE_COLUMNS and _has_rich_messages(data[key]) for key in columns):
        return datasets.Dataset.from_dict(data)
    json_feature = getattr(datasets, "Json", None)
    if json_feature is None:
        raise DatasetError(
            "messages with tool calls or other fields besides role and content need datasets >= 4.7 "
            f"(its Json feature) to be stored as they are; this is datasets "
            f"{datasets.__version__}. Upgrade it with pip install -U datasets."
        )
    features = {}
    for key in columns:
        values = data[key]
        if all(value is None or isinstance(value, str) for value in values):
            features[key] = datasets.Value("string")
        elif all(value is None or isinstance(value, list) for value in values):
            features[key] = datasets.List(json_feature())
            data[key] = [None if value is None else [_json(item) for item in value] for value in values]
        else:
            features[key] = json_feature()
            data[key] = [None if value is None else _json(value) for value in values]
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


_READABLE_INTS = range(-(2**63), 2**64)
"""The integers that pandas' JSON parser (the one ``datasets``' ``Json`` feature reads with) reads back."""


def _json(value: Any) -> str:
    """``value`` as JSON text for ``datasets``' ``Json`` feature, numbers written as ``to_dataset`` says.

    Otherwise as Python's ``json`` writes it: the same strings, keys, nesting and errors for other types.
    """
    if isinstance(value, Mapping):
        items = (f"{json.dumps(_key(key), ensure_ascii=False)}: {_json(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json(item) for item in value) + "]"
    if isinstance(value, float):
        return _float_json(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _READABLE_INTS:
        return _float_json(_nearest_float(value))
    return json.dumps(value, ensure_ascii=False)


def _key(key: Any) -> str:
    """An object key as ``json`` writes it: strings as they are, ``True`` as ``true``, ``1`` as ``1``, ..."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _nearest_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _float_json(value: float) -> str:
    """A float in scientific notation with its shortest exact digits: ``8.501873609991611e-2``.

    pandas' parser reads at most 15 digits after a decimal point, and ``repr`` writes up to 17 significant
    digits with as many leading zeros as the exponent needs (``0.08501873609991611``): written with one digit
    before the point, every digit but a 17th is read. ``NaN``, infinities and zeros are written as ``json``
    writes them.
    """
    if not math.isfinite(value) or value == 0:
        return json.dumps(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    if not isinstance(exponent, int):  # only NaN and infinities have none, and they are written above
        return json.dumps(value)
    text = "".join(map(str, digits))
    fraction = f".{text[1:]}" if len(text) > 1 else ""
    return f"{'-' if sign else ''}{text[0]}{fraction}e{exponent + len(text) - 1}"


def _has_rich_messages(values: list[Any]) -> bool:
    return any(
        isinstance(value, list) and any(set(message) != {"role", "content"} for message in value)
        for value in values
    )


def _has_delicate_numbers(value: Any) -> bool:
    """Floats, or integers beyond 64 bits: what ``datasets``' JSON reader may not give back exactly."""
    if isinstance(value, float):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return value not in _READABLE_INTS
    if isinstance(value, dict):
        return any(_has_delicate_numbers(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_delicate_numbers(item) for item in value)
    return False


def json_read_back_problems(dataset: Dataset, rows: Sequence[dict[str, Any]], labels: list[str]) -> list[str]:
    """Rows that ``dataset`` (made by ``to_dataset``) does not read back exactly, one sentence each.

    Only rows with floats or very large integers in their messages are read back and compared, since only
    those can differ (see ``to_dataset``).
    """
    import datasets

    message_columns = [
        key
        for key, feature in dataset.features.items()
        if isinstance(feature, datasets.List) and type(feature.feature).__name__ == "Json"
    ]
    problems = []
    for index, row in enumerate(rows):
        delicate = [key for key in message_columns if _has_delicate_numbers(row.get(key))]
        if not delicate:
            continue
        stored = dataset[index]
        for key in delicate:
            if stored[key] != row[key]:
                written, read = _first_difference(row[key], stored[key])
                problems.append(f"{labels[index]}, {key}: {written!r} is read back as {read!r}")
    return problems


def _first_difference(written: Any, read: Any) -> tuple[Any, Any]:
    if isinstance(written, dict) and isinstance(read, dict) and written.keys() == read.keys():
        for key in written:
            if written[key] != read[key]:
                return _first_difference(written[key], read[key])
    if isinstance(written, list) and isinstance(read, list) and len(written) == len(read):
        for left, right in zip(written, read, strict=True):
            if left != right:
                return _first_difference(left, right)
    return written, read


def prepare_dataset(spec: DatasetSpec, *, chat: bool) -> tuple[Dataset, DatasetReport]:
    """Read, detect, convert and validate the spec's data into a ``datasets.Dataset`` of canonical rows.

    Args:
        spec: the dataset part of a recipe.
        chat: whether the tokenizer has a chat template (instruction data then becomes conversational).
    """
    raw = load_rows(spec)
    prepared = convert_rows(raw, spec, FormatOptions(text_field=spec.text_field, chat=chat))
    dataset = to_dataset(prepared.rows)
    problems = json_read_back_problems(dataset, prepared.rows, [raw.label(i) for i in prepared.kept])
    report = prepared.report
    if problems:
        note = (
            f"{len(problems)} rows hold numbers that the datasets library reads back slightly changed, and "
            f"training renders them as read back (first: {problems[0]}). Give such arguments as strings to "
            "keep their exact text."
        )
        report = attrs.evolve(report, notes=(*report.notes, note))
    return dataset, report
