"""A source of vision rows read into a ``datasets.Dataset`` of TRL's form, with its ``DatasetReport``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.data.media import handle_media
from trl_sft_kit.data.prepare import _as_object, bad_row, rename_columns
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.sources import load_rows
from trl_sft_kit.errors import RowError
from trl_sft_kit.specs import DatasetSpec
from trl_sft_kit.vision.rows import vision_row

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["ROW_PLACE", "VISION_FORMAT", "prepare_vision_data", "row_label", "vision_dataset"]

VISION_FORMAT = "vision_messages"
"""The format name vision rows are reported under."""

ROW_PLACE = "source_row"
"""The key of a vision row holding where it was read (``path``, ``row``, ``line``: ``RowError``'s keywords),
for the errors of its masks at compile time; ``vision_dataset`` leaves it out."""


def prepare_vision_data(spec: DatasetSpec) -> tuple[list[dict[str, Any]], DatasetReport]:
    """Read ``spec``'s rows and make each a vision row (``trl_sft_kit.vision.rows.vision_row``).

    Image paths are read relative to the folder of the file a row came from. Under ``media="drop"`` the
    images are dropped first (counted) and the rows train on their text.

    Raises:
        RowError: a bad row (file, row, field), unless ``spec.on_bad_rows == "skip"``: it is then skipped and
            counted; also when no row is left.
    """
    raw = rename_columns(load_rows(spec), spec)
    media_rows, media_dropped = 0, dict[str, int]()
    rows_in: Sequence[Any] = raw.rows
    if spec.media == "drop":
        rows_in, media_rows, media_dropped = handle_media(raw.rows, "drop", source=raw.name, where=raw.where)
    rows: list[dict[str, Any]] = []
    skipped: list[SkippedRow] = []
    prompt_completion = 0
    for index, row in enumerate(rows_in):
        origin = Path(raw.origins[index][0])
        base = origin.parent if origin.is_file() else None
        try:
            given = _as_object(row)
            rows.append({**vision_row(given, base), ROW_PLACE: raw.where(index)})
            prompt_completion += not any(key in given for key in ("messages", "conversations"))
        except RowError as exc:
            skipped.append(bad_row(exc, raw, index, spec.on_bad_rows, "vision rows"))
    if not rows:
        raise RowError(
            f"every one of the {len(raw)} rows was bad, so nothing is left to train on; first: {skipped[0]}",
            path=raw.name,
        )
    per_row = Counter(len(row["images"]) for row in rows)
    images = sum(count * n for count, n in per_row.items())
    spread = ", ".join(f"{n} rows with {count}" for count, n in sorted(per_row.items()))
    note = f"{images} images in {len(rows)} rows ({spread})"
    report = DatasetReport(
        source=raw.name,
        format=VISION_FORMAT,
        canonical="prompt_completion" if prompt_completion == len(rows) else "messages",
        detection=(
            f"format {VISION_FORMAT!r}: conversations with images for a vision-language model (content "
            "parts and an 'images' column, TRL's form"
            + ("; prompt-completion rows: the prompt's turns are not trained)" if prompt_completion else ")")
        ),
        rows_read=len(raw),
        rows_kept=len(rows),
        skipped=tuple(skipped),
        notes=(note,),
        media_rows=media_rows,
        media_dropped=media_dropped,
    )
    return rows, report


def row_label(row: dict[str, Any]) -> str:
    """``data.json, row 3`` (or ``line 3``): where a vision row was read, for skipped-row reports."""
    place = row.get(ROW_PLACE) or {}
    where = f"line {place['line']}" if place.get("line") is not None else f"row {place.get('row')}"
    return f"{place['path']}, {where}" if place.get("path") else where


def vision_dataset(rows: list[dict[str, Any]]) -> Dataset:
    """The rows as a ``datasets.Dataset``: ``messages`` of content parts (and ``train``: false for a turn
    not to train, else None) and ``images`` as ``Image``."""
    import datasets

    part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    features = datasets.Features(
        {
            "messages": datasets.List(
                {
                    "role": datasets.Value("string"),
                    "content": datasets.List(part),
                    "train": datasets.Value("bool"),  # None unless a turn is marked not to train
                }
            ),
            "images": datasets.List(datasets.Image()),
        }
    )
    return datasets.Dataset.from_dict(
        {"messages": [row["messages"] for row in rows], "images": [row["images"] for row in rows]},
        features=features,
    )
