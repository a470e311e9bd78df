"""Images, videos and audio in training rows: found in every format, refused or dropped, never lost silently.

A row holds media when it has a non-empty media column (``images``, ``image``, ``videos``, ``video``,
``audios``, ``audio``, as LLaMA-Factory, LLaVA and TRL write them), a content part of a media type anywhere
in it (``{"type": "image"}``, ``{"type": "image_url", ...}``, ``input_audio``, ...: OpenAI's and TRL's
content parts), a PIL image or a ``datasets.Image`` value, or a placeholder marker (``<image>``,
``<video>``, ``<audio>``) in its text. The check runs on the rows as read, after the columns are renamed and
before format detection, so it covers every detector, plug-ins included: none of them needs to know.

What happens is the dataset's ``media`` option:

* ``"auto"`` (the default): a text-only recipe refuses such data with a ``MediaError`` that names the file,
  row and field and says what to do (a detector would otherwise keep the text, ``<image>`` markers
  included, and drop the rest without a word).
* ``"drop"``: media columns and media parts are removed, markers are taken out of the text, and the
  ``DatasetReport`` counts what went (``media_rows``, ``media_dropped``).
* ``"text"``: ``<image>``-style markers are ordinary text (HTML, say) and stay; media columns and parts
  are still refused.

Example:
    >>> found = find_media({"messages": [{"role": "user", "content": "<image>Who?"}], "images": ["a.png"]})
    >>> [(item.kind, item.field, item.count) for item in found]
    [('image marker', 'messages[0].content', 1), ('image', 'images', 1)]
    >>> row, counts = drop_media({"text": "<image>\\nA cat.", "images": ["a.png"]})
    >>> row, counts
    ({'text': 'A cat.'}, {'images': 1, 'markers': 1})
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs

from trl_sft_kit.data.row_store import MappedRows, is_lazy
from trl_sft_kit.errors import MediaError

__all__ = [
    "MEDIA_CHOICES",
    "MEDIA_COLUMNS",
    "MEDIA_PART_TYPES",
    "MediaFound",
    "drop_media",
    "find_media",
    "handle_media",
    "handle_streamed_row",
    "has_media",
]

MEDIA_CHOICES = ("auto", "drop", "text")
"""The values of ``.dataset(..., media=...)``."""

MEDIA_COLUMNS: Mapping[str, str] = {
    "images": "image",
    "image": "image",
    "videos": "video",
    "video": "video",
    "audios": "audio",
    "audio": "audio",
}
"""Top-level fields that hold media, and the kind each holds."""

MEDIA_PART_TYPES: Mapping[str, str] = {
    "image": "image",
    "image_url": "image",
    "input_image": "image",
    "video": "video",
    "video_url": "video",
    "audio": "audio",
    "audio_url": "audio",
    "input_audio": "audio",
}
"""The ``type`` of a content part that carries media, and the kind it carries."""

_MARKER = re.compile(r"<(image|video|audio)>")
_MARKER_AND_SPACE = re.compile(r"[ \t]*<(?:image|video|audio)>[ \t]*\n?")


@attrs.frozen
class MediaFound:
    """Media found in one row: its kind (``image``, ``video marker``, ...), the field, and how many."""

    kind: str
    field: str
    count: int

    def __str__(self) -> str:
        return f"{self.count} {self.kind}{'s' if self.count != 1 else ''} in {self.field!r}"


def _is_media_value(value: Any) -> bool:
    """A PIL image, or an undecoded ``datasets.Image`` / ``Audio`` value (``{"bytes", "path"}``)."""
    if type(value).__module__.startswith("PIL."):
        return True
    return isinstance(value, Mapping) and set(value) in (
        {"bytes", "path"},
        {"array", "sampling_rate", "path"},
    )


def _items(value: Any) -> int:
    """How many media items a media column's value holds (0 for ``None``, ``""`` and ``[]``)."""
    if value is None or value == "" or (isinstance(value, (list, tuple)) and not value):
        return 0
    if isinstance(value, (list, tuple)):
        return sum(1 for item in value if item is not None and item != "")
    return 1


def find_media(row: Mapping[str, Any]) -> list[MediaFound]:
    """Every piece of media in ``row`` (a raw row of any format), field by field, in the row's order."""
    found: list[MediaFound] = []
    for key, value in row.items():
        kind = MEDIA_COLUMNS.get(str(key).lower())
        if kind is not None:
            count = _items(value)
            if count:
                found.append(MediaFound(kind, str(key), count))
            continue
        _walk(value, str(key), found)
    return found


def has_media(row: Mapping[str, Any]) -> bool:
    """Whether ``find_media(row)`` finds anything: the same rules, without naming the places (the check
    every row of every source takes, so plain rows are walked once with exact-type tests)."""
    for key, value in row.items():
        if str(key).lower() in MEDIA_COLUMNS:
            if _items(value):
                return True
        elif _holds_media(value):
            return True
    return False


_PLAIN_SCALARS = frozenset({int, float, bool, type(None), bytes})


def _holds_media(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return _MARKER.search(value) is not None
    if kind is list or kind is tuple:
        return any(map(_holds_media, value))
    if kind is dict:
        if _is_media_value(value):
            return True
        part_type = value.get("type")
        if isinstance(part_type, str) and part_type in MEDIA_PART_TYPES:
            return True
        return any(map(_holds_media, value.values()))
    if kind in _PLAIN_SCALARS:
        return False
    found: list[MediaFound] = []  # anything else (a Mapping, a PIL image, a str subclass): the full rules
    _walk(value, "", found)
    return bool(found)


def _walk(value: Any, field: str, found: list[MediaFound]) -> None:
    if isinstance(value, str):
        markers = Counter(match.group(1) for match in _MARKER.finditer(value))
        found.extend(MediaFound(f"{kind} marker", field, count) for kind, count in markers.items())
    elif _is_media_value(value):
        found.append(MediaFound("image" if type(value).__module__.startswith("PIL.") else "media", field, 1))
    elif isinstance(value, Mapping):
        part_type = value.get("type")
        kind = MEDIA_PART_TYPES.get(part_type) if isinstance(part_type, str) else None
        if kind is not None:
            found.append(MediaFound(f"{kind} part", field, 1))
            return
        for key, item in value.items():
            _walk(item, f"{field}.{key}", found)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk(item, f"{field}[{index}]", found)


def drop_media(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """``row`` without its media, and how many of each were dropped (``images``, ``videos``, ``markers``).

    Media columns go, media content parts are taken out of their lists, media values become ``None`` and
    markers are cut out of the text with the spaces and the line break that follow them.
    """
    counts: Counter[str] = Counter()
    out: dict[str, Any] = {}
    for key, value in row.items():
        kind = MEDIA_COLUMNS.get(str(key).lower())
        if kind is not None:
            count = _items(value)
            if count:
                counts[f"{kind}s"] += count
            continue
        out[key] = _without(value, counts)
    return out, dict(sorted(counts.items()))


def _without(value: Any, counts: Counter[str]) -> Any:
    if isinstance(value, str):
        markers = len(_MARKER.findall(value))
        if not markers:
            return value
        counts["markers"] += markers
        return _MARKER_AND_SPACE.sub("", value)
    if _is_media_value(value):
        counts["images" if type(value).__module__.startswith("PIL.") else "media"] += 1
        return None
    if isinstance(value, Mapping):
        return {key: _without(item, counts) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        kept = []
        for item in value:
            part_type = item.get("type") if isinstance(item, Mapping) else None
            kind = MEDIA_PART_TYPES.get(part_type) if isinstance(part_type, str) else None
            if kind is not None:
                counts[f"{kind}s"] += 1
                continue
            kept.append(_without(item, counts))
        return kept
    return value


def _refusable(found: list[MediaFound], media: str) -> list[MediaFound]:
    """What ``media`` does not allow: everything under ``"auto"``, all but markers under ``"text"``."""
    if media == "text":
        return [item for item in found if not item.kind.endswith(" marker")]
    return found


def _without_media(row: Any) -> Any:
    if not isinstance(row, Mapping) or not has_media(row):
        return row
    return drop_media(row)[0]


def handle_media(
    rows: Sequence[Any],
    media: str,
    *,
    source: str,
    where: Any,
) -> tuple[Sequence[Any], int, dict[str, int]]:
    """The rows as ``media`` says: refused, with their media dropped, or as they are.

    Args:
        rows: the raw rows of one source (non-mapping rows are left for conversion to report).
        media: ``"auto"``, ``"drop"`` or ``"text"`` (see the module docstring).
        source: the source's name, for messages.
        where: ``where(i)``, the ``RowError`` keyword arguments (path, row, line) of row ``i``.

    Returns:
        The rows (media dropped under ``"drop"``), how many rows held media that was dropped, and how
        many of each kind were dropped.

    Raises:
        MediaError: ``media`` is ``"auto"`` (or ``"text"``, for media other than markers) and a row holds
            media; names the first such row and field, and how many rows hold media.
    """
    if media == "drop":
        lazy = is_lazy(rows)  # rows read when asked for: counted here, their media dropped as they are read
        out: list[Any] = []
        dropped: Counter[str] = Counter()
        media_rows = 0
        for row in rows:
            if not isinstance(row, Mapping) or not has_media(row):
                if not lazy:
                    out.append(row)
                continue
            stripped, counts = drop_media(row)
            if not lazy:
                out.append(stripped)
            dropped.update(counts)
            media_rows += 1
        kept = MappedRows(rows, _without_media) if lazy else out
        return kept, media_rows, dict(sorted(dropped.items()))
    holding = [
        index
        for index, row in enumerate(rows)
        if isinstance(row, Mapping) and has_media(row) and _refusable(find_media(row), media)
    ]
    if not holding:
        return rows, 0, {}
    first = holding[0]
    found = sorted(_refusable(find_media(rows[first]), media), key=lambda item: item.kind.endswith(" marker"))
    what = ", ".join(map(str, found))
    markers_only = all(item.kind.endswith(" marker") for item in found)
    hint = (
        " If these markers are ordinary text, not media placeholders, pass media='text'."
        if markers_only
        else ""
    )
    raise MediaError(
        f"the row holds {what} ({len(holding)} of the {len(rows)} rows of {source} hold images, videos or "
        "audio). This recipe trains a text-only model: the formats keep the text alone and training on it "
        "would silently lose the media (and train on any <image> markers as text). Train a "
        "vision-language model on this data (.model() with a checkpoint whose config has a vision_config: "
        "LLaVA, Qwen2-VL, SmolVLM, ...; see docs/vision.md), or pass .dataset(..., media='drop') to leave "
        "the media out (markers are removed from the text; the dropped media is counted in the data "
        f"report).{hint}",
        field=found[0].field,
        **where(first),
    )


def handle_streamed_row(row: Mapping[str, Any], media: str, where: str) -> Mapping[str, Any]:
    """One streamed row as ``media`` says (see ``handle_media``); ``where`` names it (``data.jsonl, line 9``).

    The rows read to detect a stream's format are checked, and counted, with ``handle_media``; the rest
    pass here one at a time while training.
    """
    (kept,), _, _ = handle_media([row], media, source=where, where=lambda _: {"path": where})
    return cast("Mapping[str, Any]", kept)
