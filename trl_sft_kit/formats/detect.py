"""Detecting which registered format a dataset's rows are in, from rows sampled across the whole set."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from trl_sft_kit.errors import DatasetFormatError
from trl_sft_kit.formats.protocol import FormatDetector, FormatOptions
from trl_sft_kit.formats.registry import available_formats, get_format

__all__ = ["Detection", "detect_format", "sample_indices"]

SAMPLE_SIZE = 64


def sample_indices(total: int, size: int = SAMPLE_SIZE) -> list[int]:
    """Up to ``size`` row indices spread evenly from the first row to the last (deterministic)."""
    if total <= size:
        return list(range(total))
    step = (total - 1) / (size - 1)
    return sorted({round(i * step) for i in range(size)})


@attrs.frozen
class Detection:
    """The outcome of detection: the format, why, and on how many sampled rows."""

    format: str
    canonical: str
    reason: str
    sampled_rows: int
    total_rows: int
    forced: bool = False

    def describe(self) -> str:
        """One readable sentence."""
        how = (
            "chosen by the recipe"
            if self.forced
            else f"detected on {self.sampled_rows} of {self.total_rows} rows"
        )
        return f"format {self.format!r} ({how}): {self.reason}"


def detect_format(
    rows: Sequence[Mapping[str, Any]] | Callable[[int], Mapping[str, Any]],
    total: int,
    options: FormatOptions,
    *,
    forced: str = "auto",
    source: str = "the dataset",
    row_label: Callable[[int], str] = lambda index: f"row {index}",
) -> Detection:
    """Find the one format that fits every sampled row.

    Args:
        rows: the rows, or a function returning row ``i``.
        total: the number of rows.
        options: detection options (the text field).
        forced: a format name to use without detecting, or ``"auto"``.
        source: how to name the data in errors (a path).
        row_label: how to name row ``i`` in errors (``line 12``).

    Rows that are not objects (a JSON list or string on a line) say nothing about the format and are left
    for conversion to report (or skip) with their file and line.

    Raises:
        DatasetFormatError: no rows; no sampled row is an object; a row no format fits; rows of different
            formats (with counts and example rows); or a tie between formats (with the way to force one).
    """
    get: Callable[[int], Mapping[str, Any]] = rows if callable(rows) else rows.__getitem__
    if total == 0:
        raise DatasetFormatError(f"{source} has no rows.", path=source)
    if forced != "auto":
        detector = get_format(forced)
        return Detection(forced, detector.canonical, "format given by the recipe", 0, total, forced=True)

    detectors: list[FormatDetector] = [registration.plugin for registration in available_formats()]
    indices = sample_indices(total)
    per_format: dict[str, list[int]] = defaultdict(list)
    reasons: dict[str, str] = {}
    not_objects: list[int] = []
    for index in indices:
        row = get(index)
        if not isinstance(row, Mapping):
            not_objects.append(index)
            continue
        matches = [(detector, detector.match(row, options)) for detector in detectors]
        fitting = [(detector, match) for detector, match in matches if match]
        if not fitting:
            why = "; ".join(f"{detector.name}: {match.reason}" for detector, match in matches)
            fields = ", ".join(map(repr, row)) or "none"
            raise DatasetFormatError(
                f"{source}, {row_label(index)} fits no known format (fields: {fields}). {why}. Rename "
                "fields with .dataset(..., columns={'old': 'new'}) or register a format.",
                path=source,
            )
        best = max(match.score for _, match in fitting)
        top = [(detector, match) for detector, match in fitting if match.score == best]
        if len(top) > 1:
            names = ", ".join(repr(detector.name) for detector, _ in top)
            raise DatasetFormatError(
                f"{source}, {row_label(index)} fits several formats equally well ({names}); "
                f"choose one with .dataset(..., format=<name>).",
                path=source,
            )
        detector, match = top[0]
        per_format[detector.name].append(index)
        reasons.setdefault(detector.name, match.reason)
    sampled = len(indices) - len(not_objects)
    if len(per_format) > 1:
        counts = Counter({name: len(found) for name, found in per_format.items()})
        parts = [
            f"{name}: {count} rows (e.g. {', '.join(row_label(i) for i in per_format[name][:3])})"
            for name, count in counts.most_common()
        ]
        raise DatasetFormatError(
            f"{source} mixes formats among {sampled} sampled rows: {'; '.join(parts)}. Split it into "
            "one file per format, or force one with .dataset(..., format=<name>) and skip the rest with "
            "on_bad_rows='skip'.",
            path=source,
        )
    if not per_format:
        first = not_objects[0]
        raise DatasetFormatError(
            f"{source}: none of the {len(indices)} sampled rows is an object with named fields "
            f"({row_label(first)} is a {type(get(first)).__name__}); each row must be a JSON object.",
            path=source,
        )
    (name,) = per_format
    return Detection(name, get_format(name).canonical, reasons[name], sampled, total)
