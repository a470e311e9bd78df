"""The output folder is never written over by accident: refused, cleared only when asked, resumed only when
there is a checkpoint of the same data and seed. None of these train (the one that does is in
``test_reproducibility.py``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.compile import Compiled
from trl_sft_kit.errors import OutputExistsError, RecipeError, ResumeError
from trl_sft_kit.runs import CHECKPOINT_RECORD, check_output_dir, last_checkpoint, prepare_output_dir

RecipeFor = Callable[..., SFTRecipe]


def _checkpoint(
    folder: Path, step: int, *, complete: bool = True, record: dict[str, object] | None = None
) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if complete:  # a complete checkpoint: trainer_state.json and the kit's record, both whole
        (path / "trainer_state.json").write_text("{}", encoding="utf-8")
        record = {} if record is None else record
    if record is not None:
        (path / CHECKPOINT_RECORD).write_text(json.dumps(record), encoding="utf-8")
    return path


def _no_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object) -> Compiled:
        raise AssertionError("compile() ran: the folder should have been refused before anything loads")

    monkeypatch.setattr("trl_sft_kit.recipe.SFTRecipe.compile", refuse)


def test_a_folder_with_files_is_refused_before_anything_loads(
    recipe_for: RecipeFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    _no_compile(monkeypatch)
    with pytest.raises(OutputExistsError) as caught:
        recipe_for(out).train()
    message = str(caught.value)
    assert caught.value.path == str(out) and str(out) in message and "notes.txt" in message
    assert "resume=True" in message and "overwrite=True" in message and "--resume" in message
    assert isinstance(caught.value, RecipeError)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_missing_or_empty_folder_is_fine(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "new") is None
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty") is None
    assert check_output_dir(tmp_path / "empty", overwrite=True) is None


def test_overwrite_refuses_a_folder_that_is_not_a_training_output(
    recipe_for: RecipeFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('keep me')", encoding="utf-8")
    _no_compile(monkeypatch)
    with pytest.raises(OutputExistsError, match="the kit did not write it"):
        recipe_for(project).train(overwrite=True)
    assert (project / "main.py").is_file()


@pytest.mark.parametrize("where", ["cwd", "parent of cwd", "home"])
def test_overwrite_never_clears_the_working_or_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    (work / "run.json").write_text("{}", encoding="utf-8")  # looks like a run folder, and still is refused
    (work.parent / "run.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(work))
    folder = {"cwd": Path("."), "parent of cwd": work.parent, "home": work}[where]
    with pytest.raises(OutputExistsError, match="will not clear"):
        prepare_output_dir(folder, overwrite=True)
    assert (work / "run.json").is_file()


def test_overwrite_clears_a_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _checkpoint(out, 3)
    (out / "run.json").write_text("{}", encoding="utf-8")
    (out / "notes.txt").write_text("", encoding="utf-8")
    plan = prepare_output_dir(out, overwrite=True)
    assert plan.checkpoint is None and out.is_dir() and list(out.iterdir()) == []


def test_overwrite_on_another_process_leaves_the_clearing_to_the_main_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _checkpoint(out, 3)
    prepare_output_dir(out, overwrite=True, clear=False)
    assert (out / "checkpoint-3").is_dir()


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="Choose one"):
        check_output_dir(tmp_path, resume=True, overwrite=True)


@pytest.mark.parametrize("exists", [False, True])
def test_resume_without_a_checkpoint_is_refused(
    recipe_for: RecipeFor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    out = tmp_path / "out"
    if exists:
        out.mkdir()
        (out / "README.md").write_text("", encoding="utf-8")
        _checkpoint(out, 5, complete=False)
    _no_compile(monkeypatch)
    with pytest.raises(ResumeError, match="nothing to resume") as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # checkpoint-5 is passed over: it is incomplete
        recipe_for(out).train(resume=True)
    assert caught.value.path == str(out)
    assert ("checkpoint-5" in str(caught.value)) if exists else ("without resume" in str(caught.value))


def test_the_last_complete_checkpoint_is_resumed_and_a_cut_off_one_passed_over(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 30, complete=False)  # killed while saving: trainer_state.json is written last
    (tmp_path / "checkpoint-40").write_text("not a folder", encoding="utf-8")
    with pytest.warns(RuntimeWarning, match="checkpoint-30"):
        assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="is a file"):
        check_output_dir(tmp_path / "out", overwrite=True)


def test_resume_refuses_a_checkpoint_of_other_data_or_another_seed(
    recipe_for: RecipeFor, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    compiled = recipe_for(out).compile()
    record = {"data_fingerprint": {"sha256": "0" * 64}, "seeds": {"seed": 42, "data_seed": None}}
    _checkpoint(out, 3, record=record)
    with pytest.raises(ResumeError, match="training data differs") as caught:
        compiled.train(resume=True)
    assert caught.value.checkpoint == str(out / "checkpoint-3")
    assert "overwrite=True" in str(caught.value)

    seeded = recipe_for(out, seed=7).compile()
    fingerprint = json.loads((out / "checkpoint-3" / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
    fingerprint["data_fingerprint"]["sha256"] = _fingerprint(seeded)
    (out / "checkpoint-3" / CHECKPOINT_RECORD).write_text(json.dumps(fingerprint), encoding="utf-8")
    with pytest.raises(ResumeError, match="seed was 42 and is now 7"):
        seeded.train(resume=True)


def _fingerprint(compiled: Compiled) -> str:
    from trl_sft_kit.runs import data_fingerprint

    return str(data_fingerprint(compiled.trainer.train_dataset)["sha256"])
