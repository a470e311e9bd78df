"""With no ``.model()``, the model the kit falls back to is named in ``explain()`` and in the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.compile import DEFAULT_MODEL, MODEL_ENV
from trl_sft_kit.testing import write_sample_dataset


def test_explain_names_the_fallback_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    text = SFTRecipe().explain()
    assert f"no .model() in the recipe: training {DEFAULT_MODEL} (the default)" in text
    assert f".model(...) or ${MODEL_ENV}" in text
    assert "no .model()" not in SFTRecipe().model("gpt2").explain()


def test_compile_logs_the_fallback_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_dir))
    data = write_sample_dataset(tmp_path / "chat.jsonl", "messages", n=4)
    recipe = (
        SFTRecipe()
        .dataset(data)
        .training(output_dir=str(tmp_path / "out"), max_steps=1, max_length=64, report_to="none")
    )
    assert f"training {tiny_model_dir} (${MODEL_ENV})" in recipe.explain()
    recipe.compile()
    assert f"no .model() in the recipe: training {tiny_model_dir} (${MODEL_ENV})" in capsys.readouterr().err
