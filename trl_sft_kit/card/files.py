"""The files of an output folder: ``recipe.yaml``, ``run.json`` and the model card ``README.md``.

``write_run_files`` writes all three at the end of a run; ``write_card`` renders the card alone (a merged
copy of the model gets its card from the same record); ``read_run_info`` reads ``run.json`` back.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.card.record import run_info
from trl_sft_kit.card.text import render_card
from trl_sft_kit.errors import SFTKitError

if TYPE_CHECKING:
    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.result import TrainResult

__all__ = ["CARD_FILE", "RECIPE_FILE", "RUN_FILE", "read_run_info", "write_card", "write_run_files"]

CARD_FILE = "README.md"
RECIPE_FILE = "recipe.yaml"
RUN_FILE = "run.json"


def write_run_files(
    compiled: Compiled, result: TrainResult, *, fingerprint: Mapping[str, Any] | None = None
) -> None:
    """Write ``recipe.yaml`` (when the recipe can be written), ``run.json`` and the model card ``README.md``.

    Called at the end of ``Compiled.train()``; the card replaces the template card peft writes.
    ``fingerprint`` is the data fingerprint, kept in ``run.json``.
    """
    try:
        _write_run_files(compiled, result, fingerprint)
    except OSError as exc:  # the model is saved already: a card that cannot be written must not lose the run
        warnings.warn(
            f"the model card and run files could not be written to {str(result.output_dir)!r}: {exc}",
            RuntimeWarning,
            stacklevel=3,
        )


def _write_run_files(compiled: Compiled, result: TrainResult, fingerprint: Mapping[str, Any] | None) -> None:
    folder = result.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    recipe_file: str | None = None
    recipe_note = ""
    try:
        compiled.recipe.to_yaml(folder / RECIPE_FILE)
        recipe_file = RECIPE_FILE
    except SFTKitError as exc:
        recipe_note = str(exc)
        (folder / RECIPE_FILE).unlink(missing_ok=True)  # never leave a stale recipe from an earlier run
    info = run_info(
        compiled, result, recipe_file=recipe_file, recipe_note=recipe_note, fingerprint=fingerprint
    )
    (folder / RUN_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_card(folder, info)


def read_run_info(folder: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` record in ``folder``, or None when there is none (a folder from an older run)."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_card(folder: str | Path, info: Mapping[str, Any], *, merged: bool = False) -> Path:
    """Render the card for ``info`` into ``folder/README.md`` (the recipe inlined when it is short)."""
    folder = Path(folder)
    recipe_text = None
    if info.get("recipe_file") and (folder / RECIPE_FILE).is_file():
        recipe_text = (folder / RECIPE_FILE).read_text(encoding="utf-8")
    path = folder / CARD_FILE
    path.write_text(render_card(info, merged=merged, recipe_text=recipe_text), encoding="utf-8")
    return path
