"""Detecting which registered format a dataset's rows are in, from rows sampled across the whole set."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from trl_sft_kit.errors import DatasetFormatError
from trl_sft_kit.formats.conversion import checked_match
from trl_sft_kit.formats.protocol import FormatDetector, FormatOptions
from trl_sft_kit.formats.registry import available_formats, format_names, get_format
from trl_sft_kit.plugins import Registration

__all__ = ["Detection", "RunnerUp", "detect_format", "sample_indices"]

SAMPLE_SIZE = 64


def sample_indices(total: int, size: int = SAMPLE_SIZE) -> list[int]:
    """Up to ``size`` row indices spread evenly from the first row to the last (deterministic)."""
    if total <= size:
        return list(range(total))
    step = (total - 1) / (size - 1)
    return sorted({round(i * step) for i in range(size)})


@attrs.frozen
class RunnerUp:
    """A format that also fit some sampled rows, less specifically than the detected one."""

    format: str
    reason: str
    rows: int


@attrs.frozen
class Detection:
    """The outcome of detection: the format, why, on how many sampled rows, and what came second."""

    format: str
    canonical: str
    reason: str
    sampled_rows: int
    total_rows: int
    forced: bool = False
    runners_up: tuple[RunnerUp, ...] = ()
    not_objects: int = 0

    def describe(self) -> str:
        """A readable sentence or two: which format, why, on how many sampled rows, and the runners-up.

        Examples:
            >>> reason = "has 'instruction' and 'output' fields"
            >>> found = Detection("alpaca", "prompt_completion", reason, 3, 3)
            >>> found.describe()
            "format 'alpaca' (detected on 3 of 3 rows): has 'instruction' and 'output' fields."
        """
        if self.forced:
            return f"format {self.format!r} (chosen by the recipe): {self.reason}"
        spread = (
            ", sampled from first to last" if self.sampled_rows + self.not_objects < self.total_rows else ""
        )
        text = (
            f"format {self.format!r} (detected on {self.sampled_rows} of {self.total_rows} rows{spread}): "
            f"{self.reason}."
        )
        if self.not_objects:
            text += f" {self.not_objects} sampled rows are not objects; conversion reports them."
        if self.runners_up:
            others = "; ".join(
                f"{other.format!r} on {other.rows} rows ({other.reason})" for other in self.runners_up[:3]
            )
            text += f" Also fitting, less specifically: {others}."
        return text


def detect_format(
    rows: Sequence[Mapping[str, Any]] | Callable[[int], Mapping[str, Any]],
    total: int,
    options: FormatOptions,
    *,
    forced: str = "auto",
    source: str = "the dataset",
    row_label: Callable[[int], str] = lambda index: f"row {index}",
) -> Detection:
    """Find the one format that fits every sampled row best.

    Args:
        rows: the rows, or a function returning row ``i``.
        total: the number of rows.
        options: detection options (the text field).
        forced: a format name to use without detecting, or ``"auto"``.
        source: how to name the data in errors (a path).
        row_label: how to name row ``i`` in errors (``line 12``).

    Up to ``SAMPLE_SIZE`` rows are sampled, spread from the first row to the last. Rows that are not objects
    (a JSON list or string on a line) say nothing about the format and are left for conversion to report (or
    skip) with their file and line.

    Raises:
        DatasetFormatError: no rows; an unknown forced format (the message lists the known ones); no sampled
            row is an object; a row no format fits; rows of different formats (with counts and example
            rows); a tie between formats (with the way to force one); or a format that ``format="auto"``
            does not choose (preference data).
        PluginError: a detector's ``match()`` failed (the message names the detector and the row).
    """
    get: Callable[[int], Mapping[str, Any]] = rows if callable(rows) else rows.__getitem__
    if total == 0:
        raise DatasetFormatError(f"{source} has no rows.", path=source)
    if forced != "auto":
        if forced not in format_names():
            raise DatasetFormatError(
                f"there is no dataset format named {forced!r}; pass format='auto' to detect it, or one of "
                f"{', '.join(map(repr, format_names()))}.",
                path=source,
            )
        detector = get_format(forced)
        reason = f"named in .dataset(..., format={forced!r}), not detected; every row is still checked"
        return Detection(forced, detector.canonical, reason, 0, total, forced=True)

    registrations = available_formats()
    indices = sample_indices(total)
    per_format: dict[str, list[int]] = defaultdict(list)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: dict[str, list[str]] = defaultdict(list)
    not_objects: list[int] = []
    for index in indices:
        row = get(index)
        if not isinstance(row, Mapping):
            not_objects.append(index)
            continue
        where = f"{source}, {row_label(index)}"
        matches = [(reg, checked_match(reg, row, options, where)) for reg in registrations]
        fitting = [(reg, match) for reg, match in matches if match]
        if not fitting:
            why = "; ".join(f"{reg.name}: {match.reason}" for reg, match in matches)
            fields = ", ".join(map(repr, row)) or "none"
            raise DatasetFormatError(
                f"{where} fits no known format (fields: {fields}). {why}. Rename fields with "
                ".dataset(..., columns={'old': 'new'}) or register a format.",
                path=source,
            )
        best = max(match.score for _, match in fitting)
        top = [(reg, match) for reg, match in fitting if match.score == best]
        if len(top) > 1:
            names = ", ".join(repr(reg.name) for reg, _ in top)
            raise DatasetFormatError(
                f"{where} fits several formats equally well ({names}); choose one with "
                ".dataset(..., format=<name>).",
                path=source,
            )
        winner, match = top[0]
        per_format[winner.name].append(index)
        reasons[winner.name][match.reason] += 1
        for reg, other in fitting:
            if reg is not winner:
                seconds[reg.name].append(other.reason)
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
    detection = Detection(
        name,
        get_format(name).canonical,
        _reason(reasons[name], sampled),
        sampled,
        total,
        runners_up=_runners_up(seconds),
        not_objects=len(not_objects),
    )
    _refuse_if_asked(_registration(registrations, name), detection, source)
    return detection


def _reason(reasons: Counter[str], sampled: int) -> str:
    """The detected format's reason; when rows gave different reasons, each with its count."""
    if len(reasons) == 1:
        return next(iter(reasons))
    return "; ".join(f"{reason} ({count} of {sampled} rows)" for reason, count in reasons.most_common(3))


def _runners_up(seconds: Mapping[str, list[str]]) -> tuple[RunnerUp, ...]:
    ranked = sorted(seconds.items(), key=lambda item: -len(item[1]))
    return tuple(RunnerUp(name, found[0], len(found)) for name, found in ranked)


def _registration(registrations: Sequence[Registration[FormatDetector]], name: str) -> Registration[Any]:
    return next(reg for reg in registrations if reg.name == name)


def _refuse_if_asked(registration: Registration[Any], detection: Detection, source: str) -> None:
    """Raise when the detected format is one ``format="auto"`` must not choose (its ``auto_refusal``)."""
    refusal = getattr(registration.plugin, "auto_refusal", None)
    if not refusal:
        return
    raise DatasetFormatError(
        f"{source} is in format {detection.format!r} ({detection.reason}, on {detection.sampled_rows} "
        f"sampled rows), which format='auto' does not choose: {refusal}",
        path=source,
    )
