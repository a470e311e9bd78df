"""Vision rows in one canonical form, TRL's: ``messages`` of content parts and an ``images`` list.

The formats people ship become that one form:

* LLaMA-Factory's ``mllm_demo.json``: string contents with ``<image>`` markers, and an ``images`` list;
* TRL's and OpenAI's content parts: ``{"type": "image"}`` (the image in ``images``, or in the part's
  ``image``), ``{"type": "image_url", "image_url": {"url": ...}}``;
* ShareGPT / LLaVA: ``conversations`` of ``{"from", "value"}`` turns with ``<image>`` markers and an
  ``images`` list or a single ``image``;
* TRL's conversational prompt-completion: ``prompt`` and ``completion`` lists of messages (any of the
  above contents), which become one conversation whose prompt turns are marked ``"train": False``.

Each image is loaded as an RGB ``PIL.Image``: a path (relative to the data file), ``file://`` URL, a PIL
image, or a ``datasets.Image`` value (``{"bytes", "path"}``). The count of placeholders must match the
count of images. Any problem is a ``RowError`` naming the field (``images[1]``); the caller adds the file
and row, or skips and counts the row under ``on_bad_rows="skip"``.

Example:
    >>> from trl_sft_kit.testing.vision import sample_image
    >>> row = {"messages": [{"role": "user", "content": "<image>Colour?"},
    ...                     {"role": "assistant", "content": "Red."}], "images": [sample_image()]}
    >>> canonical = vision_row(row, base=None)
    >>> canonical["messages"][0]["content"]
    [{'type': 'image', 'text': None}, {'type': 'text', 'text': 'Colour?'}]
    >>> len(canonical["images"])
    1
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trl_sft_kit.errors import RowError
from trl_sft_kit.formats.sharegpt import ROLE_NAMES

__all__ = ["IMAGE_MARKER", "load_image", "vision_row"]

IMAGE_MARKER = "<image>"
_MARKER = re.compile(r"[ \t]*<image>[ \t]*\n?")
_IMAGE_TYPES = ("image", "image_url", "input_image")
_ROLES = ("system", "user", "assistant")


def load_image(value: Any, base: Path | None, field: str) -> Any:
    """``value`` as an RGB ``PIL.Image``; a relative path is read from ``base`` (the data file's folder).

    Raises:
        RowError: a URL that is not ``file://``, a missing or unreadable file, or a value of another type.
    """
    from PIL import Image, UnidentifiedImageError

    if type(value).__module__.startswith("PIL."):
        return value.convert("RGB")
    if isinstance(value, Mapping) and ("bytes" in value or "path" in value):
        if value.get("bytes"):
            try:
                return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
            except (OSError, UnidentifiedImageError) as exc:
                raise RowError(f"the image bytes cannot be read ({exc}).", field=field) from None
        value = value.get("path")
    if not isinstance(value, str) or not value:
        raise RowError(
            f"an image must be a path, a PIL image or a datasets.Image value (got {type(value).__name__}).",
            field=field,
        )
    if value.startswith("file://"):
        value = value[len("file://") :]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", value) or value.startswith("data:"):
        raise RowError(
            f"the image {value[:80]!r} is a URL; the kit reads no image from the network. Download the "
            "images and give their paths (relative to the data file).",
            field=field,
        )
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise RowError(f"the image file {str(path)!r} does not exist.", field=field)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise RowError(
            f"the image file {str(path)!r} cannot be read as an image ({exc}).", field=field
        ) from None


def _turns(row: Mapping[str, Any]) -> list[tuple[str, str, Any, bool]]:
    """The row's turns as ``(field, role, content, trained)``, roles made standard.

    ``trained`` is false for a turn marked ``"train": false`` or ``"weight": 0``, as in text rows, and for
    every turn of a conversational prompt-completion row's ``prompt`` (its completion is what trains).
    """
    fields: list[tuple[str, list[Any], bool]] = []
    for key in ("messages", "conversations"):
        turns = row.get(key)
        if isinstance(turns, list) and turns:
            fields = [(key, turns, True)]
            break
    else:
        prompt, completion = row.get("prompt"), row.get("completion")
        if isinstance(prompt, list) and isinstance(completion, list) and prompt and completion:
            fields = [("prompt", prompt, False), ("completion", completion, True)]
        elif isinstance(prompt, str) or isinstance(completion, str):
            raise RowError(
                "prompt-completion rows with images must be conversational: give 'prompt' and 'completion' "
                "as lists of messages (the images in the prompt's user turns).",
                field="prompt",
            )
        else:
            raise RowError(
                "a vision row needs a 'messages' or 'conversations' list of turns, or 'prompt' and "
                "'completion' lists of messages.",
                field="messages",
            )
    out = []
    for key, turns, trainable in fields:
        for index, turn in enumerate(turns):
            if not isinstance(turn, Mapping):
                raise RowError("each turn must be an object.", field=f"{key}[{index}]")
            role = turn.get("role", turn.get("from"))
            role = ROLE_NAMES.get(role, role) if isinstance(role, str) else role
            if role not in _ROLES:
                raise RowError(
                    f"role {role!r} is not one of {', '.join(_ROLES)} (vision rows have no tools).",
                    field=f"{key}[{index}].role",
                )
            trained = trainable and turn.get("train") is not False and turn.get("weight") != 0
            out.append((f"{key}[{index}]", role, turn.get("content", turn.get("value")), trained))
    return out


def _parts(content: Any, field: str, inline: list[Any]) -> list[dict[str, Any]]:
    """Content parts of one turn; images met inline (a part's own ``image`` / ``image_url``) are listed."""
    if isinstance(content, str):
        parts: list[dict[str, Any]] = []
        pieces = _MARKER.split(content)
        for index, piece in enumerate(pieces):
            if index:
                parts.append({"type": "image", "text": None})
                inline.append(None)
            if piece:
                parts.append({"type": "text", "text": piece})
        return parts
    if not isinstance(content, list):
        raise RowError(
            f"content must be a string or a list of parts (got {type(content).__name__}).", field=field
        )
    parts = []
    for index, part in enumerate(content):
        where = f"{field}[{index}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind in _IMAGE_TYPES:
            assert isinstance(part, Mapping)
            payload = part.get("image") if kind == "image" else part.get(kind)
            if isinstance(payload, Mapping) and "url" in payload:
                payload = payload["url"]
            parts.append({"type": "image", "text": None})
            inline.append(payload)
        else:
            raise RowError(
                "a content part must be {'type': 'text', 'text': ...} or an image part.", field=where
            )
    return parts


def vision_row(row: Mapping[str, Any], base: Path | None) -> dict[str, Any]:
    """One raw row as ``{"messages": [... content parts ...], "images": [PIL images]}``.

    Args:
        row: a raw row in one of the formats of the module docstring.
        base: the folder relative image paths are read from (the data file's), or None for the working
            folder.

    Raises:
        RowError: bad turns, a count of placeholders that differs from the count of images, or an image
            that cannot be loaded; names the field.
    """
    turns = _turns(row)
    inline: list[Any] = []
    messages = []
    for place, role, content, trained in turns:
        field = f"{place}.content"
        parts = _parts(content, field, inline)
        if not parts:
            raise RowError(f"the {role} message is empty.", field=field)
        if role != "user" and any(part["type"] == "image" for part in parts):
            raise RowError(f"images belong in user turns, not in a {role} message.", field=field)
        messages.append({"role": role, "content": parts, **({} if trained else {"train": False})})
    if messages[-1]["role"] != "assistant":
        raise RowError("the last message must be the assistant's, the one to train on.", field=turns[-1][0])
    column_key = "images" if "images" in row else "image" if "image" in row else None
    column = row.get(column_key) if column_key else None
    given = [] if column in (None, "") else list(column) if isinstance(column, (list, tuple)) else [column]
    unfilled = sum(1 for payload in inline if payload is None)
    if unfilled != len(given):
        raise RowError(
            f"the turns hold {unfilled} image placeholders (<image> markers or image parts without an image) "
            f"but {len(given)} images are given; give one image for each placeholder, in order.",
            field=column_key or "images",
        )
    images: list[Any] = []
    taken = 0
    source = turns[0][0].split("[")[0]  # messages, conversations or prompt
    for position, payload in enumerate(inline):
        if payload is None:
            field = f"{column_key}[{taken}]" if isinstance(column, (list, tuple)) else str(column_key)
            images.append(load_image(given[taken], base, field))
            taken += 1
        else:
            images.append(load_image(payload, base, f"{source} (image part {position})"))
    return {"messages": messages, "images": images}
