"""From a ``DatasetSpec`` to canonical rows: read, rename columns, detect the format, convert, check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.sources import RawRows, UnreadableRow, load_rows
from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import Detection, FormatOptions, detect_format, get_format
from trl_sft_kit.specs import DatasetSpec

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["PreparedRows", "convert_rows", "detect_spec_format", "prepare_dataset"]


class PreparedRows:
    """Canonical rows with their report."""

    def __init__(self, rows: list[dict[str, Any]], report: DatasetReport) -> None:
        self.rows = rows
        self.report = report


def rename_columns(raw: RawRows, spec: DatasetSpec) -> RawRows:
    if not spec.columns:
        return raw
    mapping = dict(spec.columns)
    rows = []
    for row in raw.rows:
        if isinstance(row, Mapping):
            rows.append({mapping.get(key, key): value for key, value in row.items()})
        else:
            rows.append(row)
    return RawRows(raw.name, rows, raw.origins)


def detect_spec_format(raw: RawRows, spec: DatasetSpec, options: FormatOptions) -> Detection:
    """Detect (or take the forced) format of already-read rows."""
    return detect_format(
        raw.rows, len(raw), options, forced=spec.format, source=raw.name, row_label=raw.label
    )


def convert_rows(raw: RawRows, spec: DatasetSpec, options: FormatOptions) -> PreparedRows:
    """Detect the format and convert every row, stopping at the first bad row or skipping and counting.

    Raises:
        DatasetFormatError: see ``detect_format``.
        RowError: a bad row, when ``spec.on_bad_rows == "error"``; names file, line or row, and field.
            Also when no row is left: every row was bad, or none at all is a JSON object.
    """
    raw = rename_columns(raw, spec)
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
    detector = get_format(detection.format)
    rows: list[dict[str, Any]] = []
    skipped: list[SkippedRow] = []
    for index, row in enumerate(raw.rows):
        try:
            rows.append(detector.convert(_as_object(row), options))
        except RowError as exc:
            if spec.on_bad_rows == "skip":
                skipped.append(SkippedRow(raw.label(index), exc.field, exc.reason))
                continue
            raise RowError(
                f"{exc.reason.rstrip('.')} (format {detection.format!r}). Fix the row, or pass "
                "on_bad_rows='skip' to leave such rows out (they are counted and reported).",
                field=exc.field,
                **raw.where(index),
            ) from None
    report = DatasetReport(
        source=raw.name,
        format=detection.format,
        canonical=detection.canonical,
        detection=detection.describe(),
        rows_read=len(raw),
        rows_kept=len(rows),
        skipped=tuple(skipped),
    )
    if not rows:
        raise RowError(
            f"every one of the {len(raw)} rows was bad, so nothing is left to train on; first: {skipped[0]}",
            path=raw.name,
        )
    return PreparedRows(rows, report)


def _as_object(row: Any) -> Mapping[str, Any]:
    """The row itself, or a ``RowError`` when it is a line that was not JSON or is not a JSON object."""
    if isinstance(row, UnreadableRow):
        raise RowError(row.reason)
    if not isinstance(row, Mapping):
        raise RowError(f"a row must be a JSON object (got {type(row).__name__}).")
    return row


def prepare_dataset(spec: DatasetSpec, *, chat: bool) -> tuple[Dataset, DatasetReport]:
    """Read, detect, convert and validate the spec's data into a ``datasets.Dataset`` of canonical rows.

    Args:
        spec: the dataset part of a recipe.
        chat: whether the tokenizer has a chat template (instruction data then becomes conversational).
    """
    from datasets import Dataset

    prepared = convert_rows(load_rows(spec), spec, FormatOptions(text_field=spec.text_field, chat=chat))
    return Dataset.from_list(prepared.rows), prepared.report
