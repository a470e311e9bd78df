"""What happened to the data on its way to the trainer: format, counts and every skipped row."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["DatasetReport", "SkippedRow"]


@attrs.frozen
class SkippedRow:
    """A row left out, with where it was and why.

    ``bad`` is true for a row that could not be trained on (left out under ``on_bad_rows="skip"``) and false
    for a good row its format leaves out on purpose (a KTO row labelled false), whatever ``on_bad_rows`` says.
    """

    where: str
    field: str | None
    reason: str
    bad: bool = True

    def __str__(self) -> str:
        field = f", field {self.field!r}" if self.field else ""
        return f"{self.where}{field}: {self.reason}"


def _media_counts(value: Any) -> tuple[tuple[str, int], ...]:
    """``{"images": 3}`` or ``[["images", 3]]`` (from the cache) as sorted ``(kind, count)`` pairs."""
    pairs = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(kind), int(count)) for kind, count in pairs))


def _field_kind(field: str | None) -> str:
    """A field with its list positions blanked, to group skipped rows: ``messages[].role``."""
    return re.sub(r"\[\d+\]", "[]", field) if field else "(the row)"


@attrs.frozen
class DatasetReport:
    """Counts for one prepared dataset: nothing is dropped without appearing here.

    ``detection`` says which format, why, and on how many sampled rows; ``skipped`` lists every row left
    out, so ``rows_read == rows_kept + len(skipped)``; ``notes`` holds anything else worth knowing.

    Attributes:
        source: the file, folder, hub id or in-memory source the rows came from.
        format: the detected (or forced) format name.
        canonical: what the rows became: ``messages``, ``prompt_completion`` or ``text``.
        detection: why that format, on how many sampled rows, and the runners-up.
        rows_read: rows read from the source.
        rows_kept: rows converted and kept.
        skipped: every row left out, with where, field and reason.
        notes: anything else worth knowing about the data.
        media_rows: rows whose images, videos or audio were dropped (``.dataset(..., media="drop")``).
        media_dropped: what was dropped from them, by kind: ``(("images", 3), ("markers", 3))``.
    """

    source: str
    format: str
    canonical: str
    detection: str
    rows_read: int
    rows_kept: int
    skipped: tuple[SkippedRow, ...] = ()
    notes: tuple[str, ...] = ()
    media_rows: int = 0
    media_dropped: tuple[tuple[str, int], ...] = attrs.field(default=(), converter=_media_counts)

    @property
    def rows_bad(self) -> int:
        """Rows left out because they could not be trained on."""
        return sum(1 for row in self.skipped if row.bad)

    @property
    def rows_excluded(self) -> int:
        """Good rows their format left out on purpose (KTO rows labelled false)."""
        return len(self.skipped) - self.rows_bad

    def skipped_by_field(self) -> dict[str, int]:
        """How many rows were skipped for a problem in each field (list positions blanked), most first.

        >>> report = DatasetReport("d", "messages", "messages", "", 3, 1, (
        ...     SkippedRow("row 0", "messages[1].role", "unknown role 'bot'"),
        ...     SkippedRow("row 2", "messages[3].role", "unknown role 'x'"),
        ... ))
        >>> report.skipped_by_field()
        {'messages[].role': 2}
        """
        return dict(Counter(_field_kind(row.field) for row in self.skipped).most_common())

    def summary(self) -> str:
        """A few lines for logs and ``explain()``: source, detection, counts, and the skipped rows."""
        skipped = f"{len(self.skipped)} skipped"
        if self.rows_excluded:
            skipped += f" ({self.rows_excluded} left out by the format, {self.rows_bad} bad)"
        lines = [
            f"data: {self.source}",
            f"  {self.detection}",
            f"  rows: {self.rows_read} read, {self.rows_kept} kept as {self.canonical!r} rows, {skipped}",
        ]
        if self.skipped:
            counts = ", ".join(f"{field} {count}" for field, count in self.skipped_by_field().items())
            lines.append(f"  skipped rows by field: {counts}")
        lines += [f"  skipped {row}" for row in self.skipped[:10]]
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more skipped rows")
        if self.media_rows:
            what = ", ".join(f"{count} {kind}" for kind, count in self.media_dropped)
            lines.append(
                f"  media dropped (media='drop'): {what}, from {self.media_rows} rows; trained on their "
                "text alone"
            )
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)
