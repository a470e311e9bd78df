"""save_loss_plot: a small PNG of the loss by step, drawn from a real trainer's log history."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.plots import LOSS_PLOT_FILE, loss_points, save_loss_plot

REPO = Path(__file__).resolve().parent.parent
CHAT = REPO / "examples" / "data" / "chat_sample_data.jsonl"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_loss_plot_of_a_real_tiny_run(
    tiny_model_dir: Path, fast_training: dict[str, Any], tmp_path: Path
) -> None:
    compiled = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(CHAT)
        .lora(r=4)
        .training(**fast_training, max_steps=3)
        .compile()
    )
    compiled.train()
    history = compiled.trainer.state.log_history
    assert len(loss_points(history)) == 3  # logging_steps=1

    path = save_loss_plot(history, tmp_path / "run" / LOSS_PLOT_FILE)
    assert path == tmp_path / "run" / "loss.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert "matplotlib.pyplot" not in sys.modules  # drawn on the Agg canvas, the global backend untouched


def test_evaluation_loss_alone_is_drawn_too(tmp_path: Path) -> None:
    path = save_loss_plot([{"eval_loss": 2.0, "step": 5}, {"eval_loss": 1.5, "step": 10}], tmp_path / "l.png")
    assert path is not None and path.read_bytes().startswith(PNG_MAGIC)


def test_nothing_to_draw_writes_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert save_loss_plot([], tmp_path / "l.png") is None
        assert (
            save_loss_plot(
                [{"train_runtime": 1.0, "step": 3}, {"loss": float("nan"), "step": 1}], tmp_path / "l.png"
            )
            is None
        )
    assert not (tmp_path / "l.png").exists()


def test_without_matplotlib_the_plot_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(RuntimeWarning, match="matplotlib is not installed"):
        assert save_loss_plot([{"loss": 1.0, "step": 1}], tmp_path / "l.png") is None
    assert not (tmp_path / "l.png").exists()


def test_a_plot_that_cannot_be_written_warns_and_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.warns(RuntimeWarning, match="could not be written"):
        assert save_loss_plot([{"loss": 1.0, "step": 1}], blocker / "loss.png") is None
