"""What happened to the data on its way to the trainer: format, counts and every skipped row."""

from __future__ import annotations

import attrs

__all__ = ["DatasetReport", "SkippedRow"]


@attrs.frozen
class SkippedRow:
    """A row left out under ``on_bad_rows="skip"``, with where it was and why."""

    where: str
    field: str | None
    reason: str

    def __str__(self) -> str:
        field = f", field {self.field!r}" if self.field else ""
        return f"{self.where}{field}: {self.reason}"


@attrs.frozen
class DatasetReport:
    """Counts for one prepared dataset: nothing is dropped without appearing here."""

    source: str
    format: str
    canonical: str
    detection: str
    rows_read: int
    rows_kept: int
    skipped: tuple[SkippedRow, ...] = ()

    def summary(self) -> str:
        """A few lines for logs and ``explain()``."""
        lines = [
            f"data: {self.source}",
            f"  {self.detection}",
            f"  rows: {self.rows_read} read, {self.rows_kept} kept as {self.canonical!r} rows, "
            f"{len(self.skipped)} skipped",
        ]
        lines += [f"  skipped {row}" for row in self.skipped[:10]]
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more skipped rows")
        return "\n".join(lines)
