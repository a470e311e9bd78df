"""Shared fixtures: offline tiny models and sample data, built once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from trl_sft_kit.testing import save_tiny_model, write_sample_dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_DATA = REPO / "examples" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Qwen2-style model and tokenizer with the qwen2_5 chat template."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-qwen2_5"), chat_template="qwen2_5")


@pytest.fixture(scope="session")
def tiny_model_dir_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny model whose tokenizer has no chat template."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-plain"), chat_template=None)


@pytest.fixture()
def sample_file(tmp_path: Path) -> Iterator[object]:
    """``sample_file(format, n=16)`` writes sample rows of a format to a .jsonl file and returns its path."""

    def make(format: str, n: int = 16) -> Path:
        return write_sample_dataset(tmp_path / f"{format}.jsonl", format, n)

    yield make


@pytest.fixture()
def fast_training(tmp_path: Path) -> dict[str, object]:
    """Training fields that keep a tiny CPU run to seconds."""
    return {
        "output_dir": str(tmp_path / "out"),
        "max_length": 128,
        "per_device_train_batch_size": 8,
        "logging_steps": 1,
        "save_strategy": "no",
        "activation_checkpointing": False,
        "disable_tqdm": True,
        "seed": 0,
    }
