"""The kit's record in each ``checkpoint-N`` folder, and which checkpoints are complete enough to resume.

Each checkpoint gets ``trl_sft_kit.json``: the data fingerprint, the seeds and the recipe fields a resumed
run must share (``RESUME_FIELDS``: the model, LoRA, the optimizer's settings, batch size, length). It is
written atomically (a temporary file, then ``os.replace``), and first: as soon as the trainer decides to
save, before it writes the checkpoint's files, and again after (for saves decided later, as with
``save_strategy="best"``).

A checkpoint is complete only when both its record and ``trainer_state.json`` (which transformers writes
after the weights, optimizer and RNG states) exist and parse. Anything less was cut off by a killed
process: resume passes over it, says so, and uses the checkpoint before it.

Nothing here imports torch, transformers or TRL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trl_sft_kit.errors import ResumeError

__all__ = [
    "CHECKPOINT_RECORD",
    "RESUME_FIELDS",
    "check_record",
    "checkpoint_problem",
    "checkpoints",
    "complete_checkpoint",
    "last_checkpoint",
    "read_record",
    "resume_fields",
    "write_record",
]

CHECKPOINT_RECORD = "trl_sft_kit.json"
"""The kit's record in each ``checkpoint-N`` folder: data fingerprint, seeds and recipe, checked on resume."""

RESUME_FIELDS = (
    "learning_rate",
    "lr_scheduler_type",
    "optim",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "packing",
)
"""``SFTConfig`` fields a resumed run must share with the run it continues.

The checkpoint's optimizer and scheduler states would override a changed learning rate or optimizer
setting without a word, and a changed batch size changes which rows each step trains on. Fields that only
say how long to train (``max_steps``, ``num_train_epochs``), how often to save, log or evaluate, may change
(to extend a run). The data itself (rows, loss mask, truncation, packing) is covered by the fingerprint.
"""

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_logger = logging.getLogger("trl_sft_kit")


def checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """The folder's ``checkpoint-N`` folders, oldest (lowest N) first; complete or not."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _CHECKPOINT.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def _json_problem(path: Path) -> str | None:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return f"it has no {path.name}"
    try:
        data = json.loads(text)
    except ValueError:
        return f"its {path.name} is cut short or damaged ({len(text)} bytes that do not parse as JSON)"
    if not isinstance(data, dict):
        return f"its {path.name} is not a JSON object"
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed (its record or ``trainer_state.json`` missing or damaged)."""
    found = (_json_problem(checkpoint / CHECKPOINT_RECORD), _json_problem(checkpoint / "trainer_state.json"))
    problems = [problem for problem in found if problem is not None]
    return "; ".join(problems) or None


def complete_checkpoint(folder: str | os.PathLike[str]) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint in ``folder``, and one sentence for each newer one passed over."""
    passed: list[str] = []
    for path in reversed(checkpoints(folder)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, passed
        passed.append(f"{str(path)!r} is incomplete ({problem}: the run was stopped while saving it)")
    return None, passed


def last_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint (record and ``trainer_state.json`` both whole), or None.

    Each newer, incomplete one is passed over with a ``RuntimeWarning`` and a log line that name it.
    """
    checkpoint, passed = complete_checkpoint(folder)
    for sentence in passed:
        message = (
            f"{sentence}, so it is passed over for the checkpoint before it"
            if checkpoint is not None
            else f"{sentence}, and no checkpoint before it is complete"
        )
        _logger.warning("resume: %s", message)
        warnings.warn(message + ".", RuntimeWarning, stacklevel=2)
    return checkpoint


def write_record(checkpoint: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` into ``checkpoint`` atomically: a reader sees the whole record or none."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(record), indent=2, ensure_ascii=False, default=str) + "\n"
    temporary = checkpoint / f".{CHECKPOINT_RECORD}.{os.getpid()}.tmp"
    with temporary.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, checkpoint / CHECKPOINT_RECORD)


def read_record(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's record. ``checkpoint`` is one ``last_checkpoint`` found complete.

    Raises:
        ResumeError: the record is missing or damaged (it changed since it was found complete).
    """
    problem = _json_problem(checkpoint / CHECKPOINT_RECORD)
    if problem is not None:
        raise ResumeError(
            f"cannot resume from {str(checkpoint)!r}: {problem}. Delete that checkpoint folder to resume "
            "from the one before it.",
            path=str(checkpoint.parent),
            checkpoint=str(checkpoint),
        )
    data: dict[str, Any] = json.loads((checkpoint / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
    return data


def resume_fields(config: Any, model: str, lora: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: the model, LoRA and ``RESUME_FIELDS``."""
    fields = {name: getattr(config, name, None) for name in RESUME_FIELDS}
    return json.loads(json.dumps({"model": model, "lora": lora, **fields}, default=str))


def check_record(
    folder: Path,
    checkpoint: Path,
    fingerprint: Mapping[str, Any] | None,
    seeds: Mapping[str, Any] | None,
    recipe: Mapping[str, Any] | None = None,
) -> None:
    """Refuse to resume ``checkpoint`` with other data, seeds or recipe fields than its record holds.

    Raises:
        ResumeError: naming each difference, and the ways out.
    """
    record = read_record(checkpoint)
    problems = []
    saved = (record.get("data_fingerprint") or {}).get("sha256")
    now = fingerprint.get("sha256") if fingerprint is not None else None
    if saved and now and saved != now:  # a streamed run has none to compare
        problems.append(
            "the training data differs from the data the run started with (its token fingerprint was "
            f"{str(saved)[:12]}... and is now {str(now)[:12]}...), so the steps left "
            "would train on other rows than the run would have"
        )
    for key, value in (seeds or {}).items():
        if key in (record.get("seeds") or {}) and record["seeds"][key] != value:
            problems.append(
                f"{key} was {record['seeds'][key]!r} and is now {value!r}, which changes the data order"
            )
    before = record.get("recipe") or {}
    for key, value in (recipe or {}).items():
        if key in before and before[key] != value:
            problems.append(f"{key} was {before[key]!r} and is now {value!r}")
    if problems:
        shown = str(folder)
        raise ResumeError(
            f"cannot resume the run in {shown!r} from {checkpoint.name}: {'; '.join(problems)}. Resume "
            "with the data and recipe the run started with (only max_steps, num_train_epochs and how often "
            "to save, log or evaluate may change), or pass overwrite=True (--overwrite) to start again, or "
            "choose another output_dir.",
            path=shown,
            checkpoint=str(checkpoint),
        )
