"""A run's output folder: never overwritten by accident, resumed from its last checkpoint, stopped cleanly.

``train(resume=False, overwrite=False)`` follows these rules before the first step:

- a missing or empty folder: training starts;
- a folder that holds anything, with neither flag: ``OutputExistsError``, naming the folder and both ways out;
- ``overwrite=True``: the folder's contents are removed first, but only when the kit's own record marks it
  as a run (``run.json``, or a ``checkpoint-N/trl_sft_kit.json``); weights alone never do. Any other
  folder, and the current, home or root folder, is refused even then;
- always refused: a folder that is, or holds, the base model's local folder, or holds a data file, or lies
  inside a data folder (``placement_problem``); and one another live run holds (``trl_sft_kit.run_lock``);
- ``resume=True``: training continues from the last complete ``checkpoint-N`` (its record and
  ``trainer_state.json`` both whole; see ``trl_sft_kit.checkpoint_record``), with the optimizer, scheduler,
  RNG states and place in the data that the checkpoint holds; ``ResumeError`` when there is none, or when
  the checkpoint was made from other data, with another seed or other recipe fields.

Each checkpoint gets the kit's record, ``trl_sft_kit.json``, written before the checkpoint's files. The
data fingerprint (``data_fingerprint``) is a SHA-256 over the token ids and labels the trainer reads, in
order, plus one for each source; ``run.json`` keeps it too.

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
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.card import RUN_FILE
from trl_sft_kit.checkpoint_record import (
    CHECKPOINT_RECORD,
    check_record,
    checkpoints,
    complete_checkpoint,
    last_checkpoint,
    write_record,
)
from trl_sft_kit.errors import OutputExistsError, RecipeError, ResumeError
from trl_sft_kit.run_lock import LOCK_FILE, check_unlocked
from trl_sft_kit.specs import DatasetSpec, ModelSpec

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
    "guarded_paths",
    "interrupted_message",
    "is_run_folder",
    "last_checkpoint",
    "placement_problem",
    "prepare_output_dir",
    "run_callback",
]

_HASH_BATCH = 4096


# ------------------------------------------------------------------------------------------ folder rules


@attrs.frozen
class RunPlan:
    """What ``prepare_output_dir`` decided: the folder, and the checkpoint to resume from (or None)."""

    output_dir: Path
    checkpoint: Path | None = None
    passed_over: tuple[str, ...] = ()
    """One sentence for each newer checkpoint that resume passed over because it is incomplete."""


def is_run_folder(folder: Path) -> bool:
    """Whether the kit's own record marks ``folder`` as a run: its ``run.json``, or a checkpoint's record.

    Weights, ``trainer_state.json`` or ``checkpoint-N`` folders alone never make a folder a run: a saved
    model, or another tool's output, holds them too, and ``overwrite=True`` must not delete it.
    """
    if (folder / RUN_FILE).is_file():
        return True
    return any((checkpoint / CHECKPOINT_RECORD).is_file() for checkpoint in checkpoints(folder))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def placement_problem(
    output_dir: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    data: Iterable[str | os.PathLike[str]] = (),
) -> str | None:
    """Why ``output_dir`` may not hold a run given the model and data it trains on, or None.

    Refused: the base model's local folder or a folder holding it (writing or clearing the run would
    destroy the model), a folder holding a data file, and a folder inside (or equal to) a data folder (the
    run's files would be read as training data next time).
    """
    folder = Path(output_dir).expanduser().resolve()
    if model is not None:
        model_path = Path(model).expanduser()
        if model_path.is_dir():
            model_path = model_path.resolve()
            if _inside(model_path, folder):
                where = "is" if model_path == folder else "holds"
                return (
                    f"it {where} the base model's folder {str(model_path)!r}, whose files the run would "
                    "write over (or delete with overwrite=True)"
                )
    for source in data:
        path = Path(source).expanduser()
        if not path.exists():
            continue
        path = path.resolve()
        if path.is_dir() and _inside(folder, path):
            return (
                f"it lies inside the data folder {str(path)!r}: the run's files would be read as training "
                "data, and overwrite=True would delete data"
            )
        if _inside(path, folder):
            return f"it holds the data file {str(path)!r}, which the run could write over or delete"
    return None


def guarded_paths(
    model: ModelSpec | None, specs: Iterable[DatasetSpec]
) -> tuple[str | None, tuple[str, ...]]:
    """The local model folder (or None) and the local data paths an output folder must keep clear of."""
    model_path = None
    if model is not None and isinstance(model.source, str):
        model_path = model.source
    data = tuple(spec.source for spec in specs if isinstance(spec.source, str))
    return model_path, data


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
    names = sorted(
        entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir() if entry.name != LOCK_FILE
    )
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_output_dir(
    output_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    model: str | os.PathLike[str] | None = None,
    data: Iterable[str | os.PathLike[str]] = (),
    check_lock: bool = True,
) -> Path | None:
    """Check the output folder rules without changing anything; return the checkpoint ``resume`` would use.

    ``SFTRecipe.train()`` calls this before compiling, so that a folder that would be refused is named
    before any model loads; ``prepare_output_dir`` checks again, then acts.

    Args:
        output_dir: the run's folder.
        resume: continue from the last complete checkpoint.
        overwrite: the folder's contents are to be removed (a folder the kit's record marks as a run).
        model: the base model's name or local folder, which the output folder may not be or hold.
        data: the local data paths, which the output folder may not hold or lie inside.
        check_lock: refuse a folder another live run holds (False when the caller holds the lock).

    Raises:
        RecipeError: both ``resume`` and ``overwrite``.
        OutputExistsError: the folder holds files and neither flag is set; ``overwrite`` on a folder that
            the kit's own record does not mark as a run, or one that must never be cleared; a folder that
            is, or holds, the base model, or holds or lies inside the data.
        RunError: another live run holds the folder's lock.
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
    placed = placement_problem(folder, model=model, data=data)
    if placed is not None:
        raise OutputExistsError(
            f"output_dir {shown!r} cannot hold the run: {placed}. Choose another output_dir, outside the "
            "model's and the data's folders.",
            path=shown,
        )
    if check_lock:
        check_unlocked(folder)
    empty = not folder.is_dir() or not any(entry.name != LOCK_FILE for entry in folder.iterdir())
    if resume:
        checkpoint, passed = complete_checkpoint(folder)
        if checkpoint is None and passed:
            raise ResumeError(
                f"nothing to resume in output_dir {shown!r}: no checkpoint is complete "
                f"({'; '.join(passed)}). The run must start again: pass overwrite=True (--overwrite), or "
                "choose another output_dir.",
                path=shown,
            )
        if checkpoint is None:
            where = "does not exist" if not folder.is_dir() else "holds no checkpoint-N folder"
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
            f"the kit did not write it: it holds no {RUN_FILE} and no checkpoint-N/{CHECKPOINT_RECORD} "
            f"(weights alone do not make a folder a run; it holds {_listing(folder)})"
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
    recipe: Mapping[str, Any] | None = None,
    model: str | os.PathLike[str] | None = None,
    data: Iterable[str | os.PathLike[str]] = (),
    clear: bool = True,
) -> RunPlan:
    """Apply the output folder rules: check, clear the folder for ``overwrite``, find the checkpoint.

    The caller holds the folder's lock (``trl_sft_kit.run_lock.holding_lock``) around this and the run.

    Args:
        output_dir: the run's folder.
        resume: continue from the last complete checkpoint.
        overwrite: remove the folder's contents first (a folder the kit's record marks as a run only); the
            run's lock file stays.
        fingerprint: this run's data fingerprint; on resume, it must match the checkpoint's record.
        seeds: this run's ``seed`` and ``data_seed``; on resume, they must match the checkpoint's record.
        recipe: this run's ``resume_fields``; on resume, they must match the checkpoint's record.
        model, data: see ``check_output_dir``.
        clear: whether this process removes the files (False on every process but the main one).

    Raises:
        RecipeError, OutputExistsError, RunError, ResumeError: see ``check_output_dir``; ``ResumeError``
            also when the checkpoint was made from other data, with another seed or other recipe fields.
    """
    folder = Path(output_dir).expanduser()
    checkpoint = check_output_dir(
        folder, resume=resume, overwrite=overwrite, model=model, data=data, check_lock=False
    )
    passed: tuple[str, ...] = ()
    if checkpoint is not None:
        passed = tuple(complete_checkpoint(folder)[1])
        last_checkpoint(folder)  # says (warning and log line) which newer checkpoints it passes over
        check_record(folder, checkpoint, fingerprint, seeds, recipe)
    elif overwrite and clear and folder.is_dir():
        for entry in folder.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return RunPlan(folder, checkpoint, passed)


def interrupted_message(output_dir: Path, step: int) -> str:
    """What ``train()`` says when Ctrl-C stopped it after saving ``checkpoint-<step>``."""
    checkpoint = str(output_dir / f"checkpoint-{step}")
    return (
        f"training was stopped by Ctrl-C after step {step}; the checkpoint {checkpoint!r} holds the model, "
        "the optimizer and the place in the data. Continue with train(resume=True) (trl-sft-kit train ... "
        "--resume)."
    )


# ------------------------------------------------------------------------------------------ fingerprint


def data_fingerprint(
    dataset: Dataset | IterableDataset,
    specs: Iterable[DatasetSpec] = (),
    read: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A fingerprint of the data a run trains on: what two runs must share to train on the same thing.

    ``sha256`` covers every column of the trainer's dataset (``input_ids``, ``labels``, ``seq_lengths``
    when packed), row by row in order, as 64-bit integers with each row's length, so that any change to a
    row, its tokens, its loss mask, truncation, packing, mixing or the order of rows changes it. A streamed
    dataset is not read ahead to be hashed: its ``sha256`` is None. ``sources`` names each source (the
    ``dataset()`` one first, then those of ``mix()``) with its own SHA-256: a file's bytes, a folder's files
    one by one, inline rows as canonical JSON, a ``datasets.Dataset``'s own fingerprint. ``read`` gives
    those taken when the data stage read the sources (``PreparedData.sources``); they are recorded as they
    are, so a file changed after ``compile()`` does not put its new digest beside the old rows.

    Returns:
        ``{"sha256", "rows", "tokens", "sources": [...]}`` (plain data, for ``run.json``).
    """
    import datasets

    from trl_sft_kit.data.provenance import source_fingerprints

    sources = list(read if read is not None else source_fingerprints(specs))
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
            if control.should_save:  # first: before the trainer writes the checkpoint's files
                self._record(args, state)
            return control

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if control.should_save:
                self._record(args, state)
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self._record(args, state)  # again, for a save decided after the step (save_strategy="best")
            return control

        def _record(self, args: Any, state: Any) -> None:
            if main_process:
                write_record(Path(args.output_dir) / f"checkpoint-{state.global_step}", record)

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
