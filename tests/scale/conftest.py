"""Fixtures for the scale tests: an isolated preprocessing cache, a loaded tiny tokenizer, sample files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit.testing import write_sample_dataset


@pytest.fixture(autouse=True)
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own preprocessing cache folder (``$TRL_SFT_KIT_CACHE``)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TRL_SFT_KIT_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def tokenizer_of(tiny_model_dir: Path) -> Any:
    """``tokenizer_of()``: a fresh copy of the tiny model's tokenizer (the data stage may set its eos)."""
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tiny_model_dir)

    def make() -> Any:
        import copy

        return copy.deepcopy(loaded)

    return make


@pytest.fixture()
def data_file(tmp_path: Path) -> Any:
    """``data_file(format, n, name=None, seed=0)``: sample rows written to a .jsonl file, its path."""

    def make(format: str, n: int, name: str | None = None, seed: int = 0) -> Path:
        return write_sample_dataset(tmp_path / (name or f"{format}-{n}.jsonl"), format, n, seed=seed)

    return make


@pytest.fixture()
def quick(tmp_path: Path) -> dict[str, Any]:
    """Training fields for a run of a few seconds on CPU."""
    return {
        "output_dir": str(tmp_path / "out"),
        "max_length": 128,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "logging_steps": 1,
        "save_strategy": "no",
        "activation_checkpointing": False,
        "disable_tqdm": True,
        "seed": 0,
    }
