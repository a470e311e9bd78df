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


@pytest.fixture()
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the small data files tests name by relative path (``chats.jsonl``, ...).

    ``validate()`` refuses a dataset path that does not exist, so tests that validate recipes naming such
    files run here.
    """
    import json

    monkeypatch.chdir(tmp_path)
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    pair = {"prompt": "Hi", "completion": "Hello"}
    for name in (
        "chats.jsonl",
        "a.jsonl",
        "b.jsonl",
        "other.jsonl",
        "data/chat.jsonl",
        "data/train.jsonl",
        "path/to/dataset.jsonl",
        "examples/chat_sample_data.jsonl",
        "chat.jsonl",
        "instructions.jsonl",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(chat) + "\n", encoding="utf-8")
    (tmp_path / "pairs.jsonl").write_text(json.dumps(pair) + "\n", encoding="utf-8")
    (tmp_path / "notes.jsonl").write_text(json.dumps({"text": "a note"}) + "\n", encoding="utf-8")
    (tmp_path / "corpus.txt").write_text("some text\n", encoding="utf-8")
    return tmp_path
