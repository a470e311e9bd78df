"""TRL's SFTTrainer trains on rows packed by the kit's ``ffd`` (tiny real model, CPU).

The route: ``SFTConfig(packing=False, padding_free=True, max_length=None)``. TRL then does not pack again
(which would drop ``seq_lengths``: ``_prepare_dataset`` keeps only input_ids and labels before packing);
the dataset is already tokenized, so preparation leaves it as it is; ``seq_lengths`` is among the
trainer's signature columns, so it reaches the collator; and ``padding_free=True`` selects
``DataCollatorForLanguageModeling(padding_free=True)``, which restarts ``position_ids`` at every packed
sequence. ``max_length`` must be ``None``: TRL refuses ``padding_free`` without packing when it is set
(it would not truncate); rows are at most the packer's ``max_length`` already. The same trainer
evaluates a packed and an unpacked eval set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")

from trl_sft_kit.packing import pack  # noqa: E402
from trl_sft_kit.testing import tiny_model, tiny_tokenizer  # noqa: E402

MAX_LENGTH = 64


def kit_packed_config(output_dir: Path, **fields: Any) -> Any:
    """The SFTConfig for data packed by the kit."""
    return trl.SFTConfig(
        output_dir=str(output_dir),
        packing=False,
        padding_free=True,
        max_length=None,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        max_steps=4,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=False,
        activation_checkpointing=False,
        dataloader_pin_memory=False,
        disable_tqdm=True,
        seed=0,
        **fields,
    )


@pytest.mark.slow
def test_sft_trainer_trains_on_kit_packed_rows(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer("qwen2_5")
    model = tiny_model(tokenizer)
    generator = torch.Generator().manual_seed(0)
    ids = [
        torch.randint(10, len(tokenizer) - 50, (int(n),), generator=generator).tolist()
        for n in torch.randint(4, 40, (48,), generator=generator)
    ]
    rows = datasets.Dataset.from_dict({"input_ids": ids, "labels": [[-100] * 2 + x[2:] for x in ids]})
    packed, report = pack(rows, "ffd", max_length=MAX_LENGTH)
    assert report.rows < len(rows) and report.rows_over_bound <= 1

    trainer = trl.SFTTrainer(
        model=model,
        args=kit_packed_config(tmp_path / "out"),
        train_dataset=packed,
        eval_dataset={"packed": packed, "unpacked": rows},
        processing_class=tokenizer,
    )
    assert trainer.data_collator.padding_free is True
    assert trainer.train_dataset.column_names == ["input_ids", "labels", "seq_lengths"]
    assert len(trainer.train_dataset) == report.rows  # TRL did not pack again

    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch
    restarts = int((batch["position_ids"][0] == 0).sum())
    assert restarts == len(batch["cu_seq_lens_q"]) - 1 > 2  # one restart per packed sequence, not per row

    before = [p.detach().clone() for p in model.parameters()]
    result = trainer.train()
    assert result.global_step == 4
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_packed_loss"]) and math.isfinite(metrics["eval_unpacked_loss"])


def test_trl_refuses_padding_free_without_packing_when_max_length_is_set(tmp_path: Path) -> None:
    """Why the route sets ``max_length=None`` (TRL's check in SFTTrainer.__init__)."""
    tokenizer = tiny_tokenizer("qwen2_5")
    rows = datasets.Dataset.from_dict({"input_ids": [[5, 6, 7]], "labels": [[5, 6, 7]]})
    packed, _ = pack(rows, "ffd", max_length=8)
    config = kit_packed_config(tmp_path / "out")
    config.max_length = 8
    with pytest.raises(ValueError, match="padding_free=True` without packing"):
        trl.SFTTrainer(
            model=tiny_model(tokenizer), args=config, train_dataset=packed, processing_class=tokenizer
        )
