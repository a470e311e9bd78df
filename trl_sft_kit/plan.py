"""What ``SFTRecipe.explain()`` says about the data: each source's format and why, and the loss in words.

Told cheaply: a file is read only when it is small (``CHEAP_BYTES``), rows given in memory are looked at,
and nothing is tokenized; a hub id or a large file says that its format is detected when the data is
prepared. ``explain(deep=True)`` adds what ``inspect()`` measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trl_sft_kit.errors import SFTKitError
from trl_sft_kit.specs import InlineRows

if TYPE_CHECKING:
    from trl_sft_kit.formats.detect import Detection
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["CHEAP_BYTES", "KIT_FIELDS", "source_plan"]

CHEAP_BYTES = 64 * 1024 * 1024
"""Files up to this size are read to detect their format for ``explain()``."""

KIT_FIELDS = ("dataset_kwargs", "dataset_text_field", "report_to")
"""SFTConfig fields the kit sets for its own preparation of the data; ``explain()`` leaves them out."""


def source_plan(spec: DatasetSpec, recipe: SFTRecipe) -> list[str]:
    """Lines for one source: what it is, its detected format and why, and what its loss is computed on."""
    from trl_sft_kit.data.mixture import source_name

    options = repr(spec).removeprefix("DatasetSpec(").removesuffix(")").split(", ", 1)[1:]
    lines = [f"  {source_name(spec)}" + (f" ({options[0]})" if options else "")]
    detection = _detect(spec)
    if detection is None:
        lines.append("    format: detected when the data is prepared (a hub id, a folder or a large file)")
        return lines
    if isinstance(detection, str):
        lines.append(f"    format: cannot be told yet: {detection}")
        return lines
    lines.append(f"    {detection.describe()}")
    from trl_sft_kit.data.tokenize import effective_loss

    try:
        loss = effective_loss(recipe.loss_spec.mode, detection.canonical)
    except SFTKitError as exc:
        lines.append(f"    loss: cannot apply: {exc}")
        return lines
    from trl_sft_kit.data.loss_words import loss_words

    chosen = recipe.loss_spec
    lines.append(f"    loss on: {loss_words(loss, chosen.roles, chosen.turns)} (loss {chosen.mode!r})")
    return lines


def _detect(spec: DatasetSpec) -> Detection | str | None:
    """The source's ``Detection``, an error's text, or None when telling would cost a full read."""
    source = spec.source
    if isinstance(source, str):
        path = Path(source).expanduser()
        if not path.is_file() or path.stat().st_size > CHEAP_BYTES:
            return None
    elif not isinstance(source, InlineRows):
        return None
    from trl_sft_kit.data.prepare import detect_spec_format, rename_columns
    from trl_sft_kit.data.sources import load_rows
    from trl_sft_kit.formats import FormatOptions

    try:
        raw = rename_columns(load_rows(spec), spec)
        return detect_spec_format(raw, spec, FormatOptions(text_field=spec.text_field))
    except SFTKitError as exc:
        return str(exc)
