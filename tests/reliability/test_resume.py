"""Interrupted runs: a training process killed midway, or stopped with Ctrl-C, resumes with
``train(resume=True)`` to the same losses and weights as a run that was never interrupted.

The runs to interrupt train in a process of their own (``train_worker.py``), from the recipe written as
JSON; the uninterrupted run (the ``reference_run`` fixture) and the resumed runs train in this process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe, TrainResult
from trl_sft_kit.errors import OutputExistsError
from trl_sft_kit.run_lock import LOCK_FILE
from trl_sft_kit.runs import CHECKPOINT_RECORD, checkpoints

WORKER = Path(__file__).resolve().parent / "train_worker.py"
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240.0

RecipeFor = Callable[..., SFTRecipe]


def _start(recipe: SFTRecipe, folder: Path, *args: str) -> subprocess.Popen[str]:
    recipe_file = folder / "recipe.json"
    recipe_file.write_text(json.dumps(recipe.to_dict()), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(recipe_file), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _adapter_weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return dict(load_file(str(folder / "adapter_model.safetensors")))


def _same_run(result: TrainResult, reference: TrainResult) -> None:
    import torch

    assert reference.recipe is not None
    assert result.global_step == reference.global_step == reference.recipe.training_fields["max_steps"]
    assert result.losses == pytest.approx(reference.losses, rel=1e-5, abs=1e-6)
    got, expected = _adapter_weights(result.output_dir), _adapter_weights(reference.output_dir)
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.allclose(got[name], tensor, rtol=1e-4, atol=1e-6), name  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_losses(
    recipe_for: RecipeFor, reference_run: TrainResult, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    recipe = recipe_for(out)
    save_every = recipe.training_fields["save_steps"]
    process = _start(recipe, tmp_path, "pause", str(save_every))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not (tmp_path / "paused").exists():  # the checkpoint is saved, the next step about to begin
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the training process never reached its checkpoint"
            time.sleep(0.1)
    finally:
        process.kill()  # SIGKILL: no handler runs, nothing is saved on the way out
        process.communicate()

    assert [path.name for path in checkpoints(out)] == [f"checkpoint-{save_every}"]
    assert not (out / "run.json").exists()
    lock = json.loads((out / LOCK_FILE).read_text(encoding="utf-8"))  # left by the killed run: stale
    assert lock["pid"] == process.pid
    with pytest.raises(OutputExistsError):  # what is there is never trained over without being asked
        recipe.train()

    result = recipe.train(resume=True)  # takes the stale lock over
    _same_run(result, reference_run)
    assert result.resumed_from == out / f"checkpoint-{save_every}" and not (out / LOCK_FILE).exists()
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["global_step"] == result.global_step and info["losses"] == list(result.losses)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resume_continues_to_the_same_losses(
    recipe_for: RecipeFor, reference_run: TrainResult, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    recipe = recipe_for(out, save_strategy="no")  # no checkpoint but the one Ctrl-C makes
    process = _start(recipe, tmp_path, "slow")
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        while line and not line.startswith("step "):
            line = process.stdout.readline()
        assert line.startswith("step "), process.communicate()
        process.send_signal(signal.SIGINT)
        printed, errors = process.communicate(timeout=START_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, errors[-3000:]
    assert "Ctrl-C: saving a checkpoint" in errors
    assert not (out / LOCK_FILE).exists()  # released on the way out of the interrupted run
    assert "interrupted: training was stopped by Ctrl-C after step" in printed
    assert "train(resume=True)" in printed and "--resume" in printed
    (checkpoint,) = checkpoints(out)
    step = int(checkpoint.name.removeprefix("checkpoint-"))
    assert 1 <= step < reference_run.global_step and str(checkpoint) in printed
    assert (checkpoint / "trainer_state.json").is_file() and (checkpoint / "optimizer.pt").is_file()
    record = json.loads((checkpoint / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
    assert record["seeds"] == {"seed": 42, "data_seed": None}

    result = recipe.train(resume=True)
    _same_run(result, reference_run)
