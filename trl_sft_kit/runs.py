"""A run's output folder: never overwritten by accident, resumed from its last checkpoint, stopped cleanly.

``train(resume=False, overwrite=False)`` follows these rules before the first step:

- a missing or empty folder: training starts;
- a folder that holds anything, with neither flag: ``OutputExistsError``, naming the folder and both ways out;
- ``overwrite=True``: the folder's contents are removed first, but only when it is recognisably a training
  output folder (``run.json``, ``trainer_state.json``, ``adapter_config.json``, weights, ``checkpoint-N``
  folders, ...); any other folder, and the current, home or root folder, is refused even then;
- ``resume=True``: training continues from the last complete ``checkpoint-N`` (one whose
  ``trainer_state.json`` was written), with the optimizer, scheduler, RNG states and place in the data
  that the checkpoint holds; ``ResumeError`` when there is none, or when the checkpoint was made from other
  data or with another seed (the data order, and so what is trained, would quietly change).

Each checkpoint gets a small record, ``trl_sft_kit.json``: the data fingerprint and the seeds. The data
fingerprint (``data_fingerprint``) is a SHA-256 over the token ids and labels the trainer reads, in order,
plus one for each source; ``run.json`` keeps it too.

During training, the first Ctrl-C (SIGINT) asks the trainer to save a checkpoint at the end of the current
step and stop; ``train()`` then raises ``KeyboardInterrupt`` saying where the checkpoint is. A second
Ctrl-C stops at once, without a checkpoint.

Nothing here imports torch, transformers or TRL at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.errors import OutputExistsError, RecipeError, ResumeError
from trl_sft_kit.specs import DatasetSpec, InlineRows

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset
    from transformers import Trainer

__all__ = [
    "CHECKPOINT_RECORD",
    "RunPlan",
    "RunWatch",
    "check_output_dir",
    "checkpoints",
    "data_fingerprint",
    "interrupted_message",
    "is_run_folder",
    "last_checkpoint",
    "prepare_output_dir",
    "run_callback",
]

CHECKPOINT_RECORD = "trl_sft_kit.json"
"""The kit's record in each ``checkpoint-N`` folder: data fingerprint and seeds, checked on resume."""

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_RUN_FILES = frozenset(
    {
        "run.json",
        "trainer_state.json",
        "training_args.bin",
        "adapter_config.json",
        "adapter_model.safetensors",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
    }
)
"""Files whose presence marks a folder as a training run's output (the kit's, TRL's or transformers')."""
_HASH_BATCH = 4096


# ------------------------------------------------------------------------------------------ folder rules


@attrs.frozen
class RunPlan:
    """What ``prepare_output_dir`` decided: the folder, and the checkpoint to resume from (or None)."""

    output_dir: Path
    checkpoint: Path | None = None


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


def last_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint: the highest ``checkpoint-N`` whose ``trainer_state.json`` exists.

    transformers writes ``trainer_state.json`` last, so a checkpoint without it was cut off while being
    saved (a killed process); it is passed over, with a warning.
    """
    for path in reversed(checkpoints(folder)):
        if (path / "trainer_state.json").is_file():
            return path
        warnings.warn(
            f"{str(path)!r} is incomplete (no trainer_state.json: the run was stopped while saving it), so "
            "it is passed over for the checkpoint before it.",
            RuntimeWarning,
            stacklevel=2,
        )
    return None


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds files a training run writes (``run.json``, weights, ``checkpoint-N``, ...)."""
    return any(
        entry.name in _RUN_FILES or (_CHECKPOINT.match(entry.name) is not None and entry.is_dir())
        for entry in folder.iterdir()
    )


def _protected(folder: Path) -> str | None:
    """Why ``folder`` must never be cleared, or None: the root, the home folder, or cwd or a parent of it."""
    resolved = folder.resolve()
    if resolved == Path(resolved.anchor):
        return "it is the root of the filesystem"
    if resolved == Path.home().resolve():
        return "it is the home folder"
    cwd = Path.cwd().resolve()
    if cwd == resolved or resolved in cwd.parents:
        return "it holds the current working folder"
    return None


def _listing(folder: Path, limit: int = 5) -> str:
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_output_dir(
    output_dir: str | os.PathLike[str], *, resume: bool = False, overwrite: bool = False
) -> Path | None:
    """Check the output folder rules without changing anything; return the checkpoint ``resume`` would use.

    ``SFTRecipe.train()`` calls this before compiling, so that a folder that would be refused is named
    before any model loads; ``prepare_output_dir`` checks again, then acts.

    Raises:
        RecipeError: both ``resume`` and ``overwrite``.
        OutputExistsError: the folder holds files and neither flag is set; or ``overwrite`` on a folder that
            is not a training output folder, or one that must never be cleared.
        ResumeError: ``resume`` and no complete checkpoint in the folder.
    """
    folder = Path(output_dir).expanduser()
    shown = str(folder)
    if resume and overwrite:
        raise RecipeError(
            "train(resume=True, overwrite=True) asks for two opposite things: resume continues the run in "
            f"{shown!r}, overwrite starts it again from nothing. Choose one (--resume or --overwrite)."
        )
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(
            f"output_dir {shown!r} is a file, not a folder; choose another output_dir.", path=shown
        )
    empty = not folder.is_dir() or not any(folder.iterdir())
    if resume:
        checkpoint = last_checkpoint(folder)
        if checkpoint is None:
            where = "does not exist" if not folder.is_dir() else "holds no complete checkpoint-N folder"
            raise ResumeError(
                f"nothing to resume: output_dir {shown!r} {where}. Train without resume to start the run "
                "(checkpoints are saved every save_steps steps, and when training is stopped with Ctrl-C).",
                path=shown,
            )
        return checkpoint
    if empty:
        return None
    if not overwrite:
        raise OutputExistsError(
            f"output_dir {shown!r} already holds files ({_listing(folder)}), and training would write over "
            "them. Pass resume=True (--resume) to continue the run from its last checkpoint, or "
            "overwrite=True (--overwrite) to delete its contents and start again; or choose another "
            "output_dir.",
            path=shown,
        )
    reason = _protected(folder)
    if reason is None and not is_run_folder(folder):
        reason = (
            "it does not look like a training output folder (no run.json, trainer_state.json, weights or "
            f"checkpoint-N folders; it holds {_listing(folder)})"
        )
    if reason is not None:
        raise OutputExistsError(
            f"overwrite=True will not clear output_dir {shown!r}: {reason}. Choose another output_dir, or "
            "empty the folder yourself.",
            path=shown,
        )
    return None


def prepare_output_dir(
    output_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    fingerprint: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
    clear: bool = True,
) -> RunPlan:
    """Apply the output folder rules: check, clear the folder for ``overwrite``, find the checkpoint.

    Args:
        output_dir: the run's folder.
        resume: continue from the last complete checkpoint.
        overwrite: remove the folder's contents first (a training output folder only).
        fingerprint: this run's data fingerprint; on resume, it must match the checkpoint's record.
        seeds: this run's ``seed`` and ``data_seed``; on resume, they must match the checkpoint's record.
        clear: whether this process removes the files (False on every process but the main one).

    Raises:
        RecipeError, OutputExistsError, ResumeError: see ``check_output_dir``; ``ResumeError`` also when
            the checkpoint was made from other data, or with another seed.
    """
    folder = Path(output_dir).expanduser()
    checkpoint = check_output_dir(folder, resume=resume, overwrite=overwrite)
    if checkpoint is not None:
        _check_record(folder, checkpoint, fingerprint, seeds)
    elif overwrite and clear and folder.is_dir():
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return RunPlan(folder, checkpoint)


def _check_record(
    folder: Path,
    checkpoint: Path,
    fingerprint: Mapping[str, Any] | None,
    seeds: Mapping[str, Any] | None,
) -> None:
    record = _read_record(checkpoint)
    if record is None:
        return  # a checkpoint written without the kit, or by an older version: nothing to compare
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
    if problems:
        shown = str(folder)
        raise ResumeError(
            f"cannot resume the run in {shown!r} from {checkpoint.name}: {'; '.join(problems)}. Resume "
            "with the data and recipe the run started with, or pass overwrite=True (--overwrite) to start "
            "again, or choose another output_dir.",
            path=shown,
            checkpoint=str(checkpoint),
        )


def _read_record(checkpoint: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((checkpoint / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def interrupted_message(output_dir: Path, step: int) -> str:
    """What ``train()`` says when Ctrl-C stopped it after saving ``checkpoint-<step>``."""
    checkpoint = str(output_dir / f"checkpoint-{step}")
    return (
        f"training was stopped by Ctrl-C after step {step}; the checkpoint {checkpoint!r} holds the model, "
        "the optimizer and the place in the data. Continue with train(resume=True) (trl-sft-kit train ... "
        "--resume)."
    )


# ------------------------------------------------------------------------------------------ fingerprint


def data_fingerprint(dataset: Dataset | IterableDataset, specs: Iterable[DatasetSpec] = ()) -> dict[str, Any]:
    """A fingerprint of the data a run trains on: what two runs must share to train on the same thing.

    ``sha256`` covers every column of the trainer's dataset (``input_ids``, ``labels``, ``seq_lengths``
    when packed), row by row in order, as 64-bit integers with each row's length, so that any change to a
    row, its tokens, its loss mask, truncation, packing, mixing or the order of rows changes it. A streamed
    dataset is not read ahead to be hashed: its ``sha256`` is None. ``sources`` names each source (the
    ``dataset()`` one first, then those of ``mix()``) with its own SHA-256: a file's bytes, a folder's files
    one by one, inline rows as canonical JSON, a ``datasets.Dataset``'s own fingerprint.

    Returns:
        ``{"sha256", "rows", "tokens", "sources": [...]}`` (plain data, for ``run.json``).
    """
    import datasets

    sources = [_source_fingerprint(spec) for spec in specs]
    if not isinstance(dataset, datasets.Dataset):
        return {"sha256": None, "rows": None, "tokens": None, "streamed": True, "sources": sources}
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    digest = hashlib.sha256()
    columns = sorted(dataset.column_names)
    digest.update(json.dumps(columns).encode())
    rows = tokens = 0
    table = dataset.with_format("arrow")
    for start in range(0, len(dataset), _HASH_BATCH):
        batch = table[start : start + _HASH_BATCH]
        rows += batch.num_rows
        for name in columns:
            column = batch.column(name).combine_chunks()
            if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                lengths = pc.fill_null(pc.list_value_length(column), -1)
                values = pc.list_flatten(column)
                digest.update(np.asarray(lengths, dtype=np.int64).tobytes())
                if name == "input_ids":
                    tokens += len(values)
            else:
                values = column
            if pa.types.is_integer(values.type) or pa.types.is_boolean(values.type):
                digest.update(np.asarray(values.fill_null(-1), dtype=np.int64).tobytes())
            else:
                digest.update(json.dumps(values.to_pylist(), default=str).encode())
    return {"sha256": digest.hexdigest(), "rows": rows, "tokens": tokens, "sources": sources}


def _source_fingerprint(spec: DatasetSpec) -> dict[str, Any]:
    source = spec.source
    if isinstance(source, InlineRows):
        text = json.dumps(source.to_list(), sort_keys=True, ensure_ascii=False, default=str)
        return {"kind": "inline rows", "sha256": hashlib.sha256(text.encode()).hexdigest()}
    if isinstance(source, str):
        path = Path(source).expanduser()
        if path.is_file() and spec.streaming:  # read as a stream because it is big: not read twice
            return {"kind": "file", "path": str(path), "sha256": None, "bytes": path.stat().st_size}
        if path.is_file():
            return {"kind": "file", "path": str(path), "sha256": _file_sha256(path)}
        if path.is_dir() and not spec.streaming:
            from trl_sft_kit.data.sources import SUPPORTED_SUFFIXES

            files = sorted(
                file
                for file in path.rglob("*")
                if file.is_file()
                and file.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in file.relative_to(path).parts)
            )
            return {
                "kind": "folder",
                "path": str(path),
                "files": {file.relative_to(path).as_posix(): _file_sha256(file) for file in files},
            }
        if path.is_dir():  # streamed
            return {"kind": "folder", "path": str(path), "files": None}
        return {"kind": "hub", "id": source, "split": spec.split}
    own = getattr(source, "_fingerprint", None)  # a datasets.Dataset knows its own
    return {"kind": type(source).__name__, "fingerprint": own if isinstance(own, str) else None}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ during training


@attrs.define
class RunWatch:
    """Set by the run callback: whether Ctrl-C asked the run to stop, and the step it stopped at."""

    interrupted: bool = False
    step: int | None = None


def run_callback(trainer: Trainer, record: Mapping[str, Any]) -> contextlib.AbstractContextManager[RunWatch]:
    """While training: write ``record`` into each checkpoint, and turn a first Ctrl-C into save-and-stop.

    A context manager that adds a ``TrainerCallback`` to ``trainer`` and, on the main thread, a SIGINT
    handler (when Python's default one is in place); both are removed on exit. The handler only sets a
    flag and puts the previous handler back, so that a second Ctrl-C raises ``KeyboardInterrupt`` at once;
    the callback sees the flag at the end of the step and asks the trainer to save a checkpoint and stop,
    so the checkpoint is taken between two optimizer steps, never halfway through one.
    """
    return _watching(trainer, dict(record))


@contextlib.contextmanager
def _watching(trainer: Trainer, record: dict[str, Any]) -> Iterator[RunWatch]:
    from transformers import TrainerCallback

    watch = RunWatch()
    main_process = trainer.is_world_process_zero()

    class _RunCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if watch.interrupted:
                control.should_save = True
                control.should_training_stop = True
                watch.step = state.global_step
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if main_process and folder.is_dir():
                with contextlib.suppress(OSError):
                    text = json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n"
                    (folder / CHECKPOINT_RECORD).write_text(text, encoding="utf-8")
            return control

    callback = _RunCallback()
    trainer.add_callback(callback)
    previous: Any = None
    installed = False
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler:

            def on_interrupt(signum: int, frame: Any) -> None:
                watch.interrupted = True
                signal.signal(signal.SIGINT, previous)
                print(
                    "\nCtrl-C: saving a checkpoint at the end of this step, then stopping "
                    "(press Ctrl-C again to stop at once, without a checkpoint).",
                    file=sys.stderr,
                    flush=True,
                )

            signal.signal(signal.SIGINT, on_interrupt)
            installed = True
    try:
        yield watch
    finally:
        trainer.remove_callback(callback)
        if installed:
            signal.signal(signal.SIGINT, previous)
