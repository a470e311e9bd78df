"""No packed row, for any packer, is left without a token carrying loss (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")

from trl_sft_kit import SFTRecipe  # noqa: E402
from trl_sft_kit.packing import pack, packer_names  # noqa: E402

MAX_LENGTH = 16


def _rows() -> Any:
    """Sequences with a long untrained prompt: some carry loss only past ``MAX_LENGTH``."""
    ids, labels = [], []
    for n in range(24):
        prompt, answer = 4 + (n * 7) % 40, 2 + n % 3
        tokens = list(range(1, prompt + answer + 1))
        ids.append(tokens)
        labels.append([-100] * prompt + tokens[prompt:])
    return datasets.Dataset.from_dict({"input_ids": ids, "labels": labels})


def _untrained_before(data: Any) -> tuple[int, int]:
    """Sequences with no trained token in their first MAX_LENGTH tokens, and untrained split pieces."""
    truncated = pieces = 0
    for labels in data["labels"]:
        truncated += all(label == -100 for label in labels[:MAX_LENGTH])
        chunks = [labels[at : at + MAX_LENGTH] for at in range(0, len(labels), MAX_LENGTH)]
        pieces += sum(all(label == -100 for label in chunk) for chunk in chunks)
    return truncated, pieces


@pytest.mark.parametrize("strategy", packer_names())
def test_no_packed_row_lacks_a_trained_token(strategy: str) -> None:
    data = _rows()
    truncated, pieces = _untrained_before(data)
    assert truncated > 0 and pieces > 0  # the data has what the packers must drop
    packed, report = pack(data, strategy, max_length=MAX_LENGTH)
    assert len(packed) > 0
    for labels in packed["labels"]:
        assert any(label != -100 for label in labels)
    if "seq_lengths" in packed.column_names:  # every packed sequence carries loss, not just every row
        for labels, lengths in zip(packed["labels"], packed["seq_lengths"], strict=True):
            at = 0
            for length in lengths:
                assert any(label != -100 for label in labels[at : at + length])
                at += length
    if strategy in ("ffd", "bfd"):
        assert report.sequences == len(data) and report.sequences_empty == truncated
    elif strategy == "bfd_split":
        assert report.sequences == len(data) and report.sequences_empty == pieces
    else:
        assert report.rows_untrained > 0


def test_split_keeps_every_trained_token() -> None:
    data = _rows()
    trained = sum(sum(label != -100 for label in labels) for labels in data["labels"])
    for strategy, overflow in (("ffd", "split"), ("bfd_split", None)):
        packed, _ = pack(data, strategy, max_length=MAX_LENGTH, overflow=overflow)  # type: ignore[arg-type]
        assert sum(sum(label != -100 for label in labels) for labels in packed["labels"]) == trained


@pytest.mark.slow
def test_packed_training_logs_losses_above_zero(tiny_model_dir: Path, tmp_path: Path) -> None:
    long_prompt = "tell me about the weather in the mountains today please " * 6
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{long_prompt} {n}"},
                {"role": "assistant", "content": "ok"},
            ]
        }
        for n in range(12)
    ] + [
        {"messages": [{"role": "user", "content": f"hi {n}"}, {"role": "assistant", "content": f"hello {n}"}]}
        for n in range(12)
    ]
    for strategy in ("ffd", "bfd"):
        result = (
            SFTRecipe()
            .model(tiny_model_dir)
            .dataset(rows)
            .loss("assistant_only")
            .packing(strategy)
            .training(
                output_dir=str(tmp_path / strategy),
                max_length=128,
                per_device_train_batch_size=2,
                max_steps=4,
                logging_steps=1,
                save_strategy="no",
                disable_tqdm=True,
                seed=0,
                activation_checkpointing=False,
            )
            .train()
        )
        assert result.losses and all(loss > 0 for loss in result.losses)


def test_trl_packers_show_no_map_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    datasets.enable_progress_bars()
    for strategy in ("bfd", "bfd_split", "wrapped"):
        pack(_rows(), strategy, max_length=MAX_LENGTH)
    assert "Map" not in capfd.readouterr().err
    assert datasets.is_progress_bar_enabled()  # left as it was
