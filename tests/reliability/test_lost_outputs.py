"""Outputs that must never be lost (issue 14): ``overwrite=True`` clears only a folder the kit's own record
marks as its run, two runs never share an output folder at once, and a checkpoint cut off while being saved
is passed over on resume, which refuses other data or another recipe.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.errors import OutputExistsError, RecipeError, ResumeError, RunError
from trl_sft_kit.runs import CHECKPOINT_RECORD, checkpoints, prepare_output_dir

LOCK_FILE = ".trl_sft_kit.lock"  # trl_sft_kit.run_lock.LOCK_FILE, spelled out: the name is a contract

RecipeFor = Callable[..., SFTRecipe]
REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"


def _files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


def _no_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object) -> None:
        raise AssertionError("compile() ran: the folder should have been refused before anything loads")

    monkeypatch.setattr("trl_sft_kit.recipe.SFTRecipe.compile", refuse)


# ------------------------------------------------------------------------------------------ overwrite


@pytest.fixture()
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model's folder, so that a test that fails cannot damage the shared one."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_overwrite_refuses_the_base_models_own_folder(recipe_for: RecipeFor, model_copy: Path) -> None:
    before = _files(model_copy)
    recipe = recipe_for(model_copy).model(model_copy)
    with pytest.raises(RecipeError, match="base model's folder"):
        recipe.validate()
    with pytest.raises(OutputExistsError, match="base model's folder") as caught:
        recipe.train(overwrite=True)
    assert caught.value.path == str(model_copy)
    assert _files(model_copy) == before


def test_compile_refuses_the_base_models_folder_before_the_model_loads(
    recipe_for: RecipeFor, model_copy: Path
) -> None:
    before = _files(model_copy)
    with pytest.raises(RecipeError, match="base model's folder"):
        recipe_for(model_copy).model(model_copy).compile()
    assert _files(model_copy) == before


def test_an_output_dir_that_holds_the_model_or_lies_in_the_data_is_refused(
    recipe_for: RecipeFor, model_copy: Path, tmp_path: Path
) -> None:
    with pytest.raises(RecipeError, match="holds the base model's folder"):
        recipe_for(tmp_path).model(model_copy).validate()
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(CHAT, data / "chat.jsonl")
    with pytest.raises(RecipeError, match="inside the data folder"):
        recipe_for(data / "out", data=data).validate()
    with pytest.raises(RecipeError, match="holds the data file"):
        recipe_for(tmp_path, data=data / "chat.jsonl").validate()


def test_overwrite_refuses_a_folder_of_weights_notes_and_sources(
    recipe_for: RecipeFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"weights the kit did not write")
    (folder / "notes.txt").write_text("my notes", encoding="utf-8")
    (folder / "src.py").write_text("print('mine')", encoding="utf-8")
    (folder / "checkpoint-3").mkdir()  # another tool's checkpoint: no kit record
    (folder / "checkpoint-3" / "trainer_state.json").write_text("{}", encoding="utf-8")
    before = _files(folder)
    with pytest.raises(OutputExistsError, match="the kit did not write it"):
        prepare_output_dir(folder, overwrite=True)
    _no_compile(monkeypatch)
    with pytest.raises(OutputExistsError, match="weights alone do not make a folder a run"):
        recipe_for(folder).train(overwrite=True)
    assert _files(folder) == before


# ------------------------------------------------------------------------------------------ the lock


@pytest.fixture()
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def _lock(folder: Path, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "host": host or socket.gethostname(), "started": "earlier"}
    (folder / LOCK_FILE).write_text(json.dumps(owner), encoding="utf-8")


def test_a_folder_a_live_run_holds_is_refused_and_not_cleared(
    recipe_for: RecipeFor,
    tmp_path: Path,
    live_process: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    _lock(out, live_process.pid)
    (out / "run.json").write_text("{}", encoding="utf-8")  # a kit run: overwrite would clear it
    _no_compile(monkeypatch)
    for flags in ({}, {"overwrite": True}):
        with pytest.raises(RunError, match="in use by another training run") as caught:
            recipe_for(out).train(**flags)
        assert str(live_process.pid) in str(caught.value) and socket.gethostname() in str(caught.value)
        assert caught.value.path == str(out)
    assert (out / "run.json").is_file() and (out / LOCK_FILE).is_file()


def test_compiled_train_refuses_a_folder_locked_on_another_host(
    recipe_for: RecipeFor, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    compiled = recipe_for(out).compile()
    _lock(out, 1, host="another-host.example")
    with pytest.raises(RunError, match=r"another-host\.example"):
        compiled.train()
    assert not checkpoints(out)


@pytest.mark.slow
def test_a_stale_lock_is_taken_over_held_while_training_and_removed_after(
    recipe_for: RecipeFor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import TrainerCallback

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    _lock(out, dead.pid)
    held: list[dict[str, Any]] = []

    class SeeLock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            held.append(json.loads((out / LOCK_FILE).read_text(encoding="utf-8")))

    compiled = recipe_for(out, max_steps=2).compile()
    compiled.trainer.add_callback(SeeLock())
    logging.getLogger("trl_sft_kit").addHandler(caplog.handler)
    try:
        compiled.train()
    finally:
        logging.getLogger("trl_sft_kit").removeHandler(caplog.handler)
    assert held and all(owner["pid"] == os.getpid() for owner in held)
    assert "stale lock" in caplog.text and str(dead.pid) in caplog.text
    assert not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_a_second_run_into_a_folder_being_trained_is_refused(recipe_for: RecipeFor, tmp_path: Path) -> None:
    worker = Path(__file__).resolve().parent / "train_worker.py"
    out = tmp_path / "out"
    recipe = recipe_for(out)
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(recipe.to_dict()), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(worker), str(recipe_file), "pause", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while not (tmp_path / "paused").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the first run never reached its checkpoint"
            time.sleep(0.1)
        before = _files(out)
        for flags in ({"overwrite": True}, {"resume": True}):
            with pytest.raises(RunError, match=f"process {process.pid}"):
                recipe.train(**flags)
        assert _files(out) == before
    finally:
        process.kill()
        process.communicate()


# ------------------------------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def finished_run(recipe_for: RecipeFor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 4 steps with checkpoints 2 and 4 (copied by each test, which then damages its copy)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    recipe_for(out).train()
    return out


@pytest.fixture()
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "out"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage", ["record missing", "record cut short", "trainer_state cut short", "trainer_state missing"]
)
def test_resume_passes_over_a_checkpoint_cut_off_while_saving(
    recipe_for: RecipeFor, run_copy: Path, damage: str
) -> None:
    last = run_copy / "checkpoint-4"
    name = CHECKPOINT_RECORD if damage.startswith("record") else "trainer_state.json"
    if damage.endswith("missing"):
        (last / name).unlink()
    else:
        text = (last / name).read_bytes()
        (last / name).write_bytes(text[: len(text) // 2])
    with pytest.warns(RuntimeWarning, match="checkpoint-4.*passed over"):
        result = recipe_for(run_copy).train(resume=True)
    assert result.resumed_from == run_copy / "checkpoint-2"
    assert len(result.passed_over) == 1 and name in result.passed_over[0]
    assert result.global_step == 4


@pytest.mark.slow
def test_resume_with_no_complete_checkpoint_names_the_damaged_ones(
    recipe_for: RecipeFor, run_copy: Path
) -> None:
    for checkpoint in checkpoints(run_copy):
        (checkpoint / "trainer_state.json").write_text('{"global_step": ', encoding="utf-8")
    with pytest.raises(ResumeError, match="no checkpoint is complete") as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        recipe_for(run_copy).train(resume=True)
    message = str(caught.value)
    assert "checkpoint-2" in message and "checkpoint-4" in message and "cut short" in message
    assert "JSONDecodeError" not in message


@pytest.mark.slow
def test_resume_after_a_kill_before_the_record_refuses_other_data(
    recipe_for: RecipeFor, run_copy: Path, tmp_path: Path
) -> None:
    (run_copy / "checkpoint-4" / CHECKPOINT_RECORD).unlink()  # killed between trainer_state and record
    other = tmp_path / "other.jsonl"
    rows = [json.loads(line) for line in CHAT.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["messages"][-1]["content"] = "Something else entirely."
    other.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(ResumeError, match="training data differs") as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        recipe_for(run_copy, data=other).train(resume=True)
    assert caught.value.checkpoint == str(run_copy / "checkpoint-2")


@pytest.mark.slow
def test_resume_refuses_another_learning_rate_and_allows_more_steps(
    recipe_for: RecipeFor, run_copy: Path
) -> None:
    with pytest.raises(ResumeError, match=r"learning_rate was 0\.01 and is now 0\.02"):
        recipe_for(run_copy, learning_rate=2e-2).train(resume=True)
    with pytest.raises(ResumeError, match="per_device_train_batch_size was 4 and is now 2"):
        recipe_for(run_copy, per_device_train_batch_size=2).train(resume=True)
    result = recipe_for(run_copy, max_steps=6).train(resume=True)
    assert result.resumed_from == run_copy / "checkpoint-4" and result.global_step == 6


@pytest.mark.slow
def test_the_checkpoint_record_is_written_before_the_checkpoint_files(
    recipe_for: RecipeFor, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    compiled = recipe_for(out).compile()
    seen: list[bool] = []
    save = compiled.trainer._save_checkpoint

    def spying_save(*args: Any, **kwargs: Any) -> None:  # the real save, watched from outside
        step = compiled.trainer.state.global_step
        seen.append((out / f"checkpoint-{step}" / CHECKPOINT_RECORD).is_file())
        save(*args, **kwargs)

    compiled.trainer._save_checkpoint = spying_save  # type: ignore[method-assign]
    compiled.train()
    assert seen == [True, True]
    assert not list(out.rglob(f".{CHECKPOINT_RECORD}.*"))  # no temporary file left behind
