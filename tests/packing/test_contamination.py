"""Packed rows do not leak between sequences: per-token losses in a packed batch equal those of each
sequence run alone, on a tiny real Llama (sdpa attention, CPU, float32).

The batch is built as ``SFTTrainer`` builds it: TRL's ``DataCollatorForLanguageModeling`` with
``padding_free=True`` flattens the rows into one, restarts ``position_ids`` at every sequence (from
``seq_lengths``) and sends no ``attention_mask``. transformers' ``masking_utils`` then sees the restarts
(``find_packed_sequence_indices``) and builds a block-diagonal causal mask for sdpa, but only when the
forward has no KV cache: ``SFTTrainer.compute_loss`` passes ``use_cache=False``; a forward that leaves
``use_cache`` to the model config (``True`` for most models) creates a cache, skips the detection and lets
every sequence attend to the ones before it (``test_a_forward_with_the_kv_cache_on_leaks``).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")

from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # noqa: E402

from trl_sft_kit.packing import pack  # noqa: E402
from trl_sft_kit.testing import tiny_model, tiny_tokenizer  # noqa: E402

MAX_LENGTH = 96
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer("qwen2_5")


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    built = tiny_model(tokenizer)
    assert built.config._attn_implementation == "sdpa"
    assert next(built.parameters()).dtype == torch.float32
    return built


@pytest.fixture(scope="module")
def sequences(tokenizer: Any) -> datasets.Dataset:
    """Tokenized chats of varied length (some longer than a row), the prompt masked out of the labels.

    ``seq_id`` and ``position`` ride along as token-aligned columns, so each packed token can be traced
    back to its sequence and place.
    """
    rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "seq_id": [], "position": []}
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "seven",
        "small",
        "birds",
        "sing",
        "softly",
    ]
    for index in range(28):
        prompt = " ".join(words[(index * 3) % len(words) :][: 1 + index % 5])
        answer = " ".join((words * 4)[index : index + 2 + (index * 7) % 23])
        prompt_text = (
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            if index % 3 == 0
            else f"Q: {prompt}\nA:"
        )
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = prompt_ids + answer_ids
        rows["input_ids"].append(ids)
        rows["labels"].append([-100] * len(prompt_ids) + answer_ids)
        rows["seq_id"].append([index] * len(ids))
        rows["position"].append(list(range(len(ids))))
    lengths = [len(ids) for ids in rows["input_ids"]]
    assert max(lengths) > MAX_LENGTH and min(lengths) < MAX_LENGTH // 4, lengths  # truncate, split, share
    return datasets.Dataset.from_dict(rows)


def token_losses(model: Any, batch: dict[str, Any], *, use_cache: bool | None = False) -> Any:
    """Loss of every token as a next-token target (0 where the label is -100), shape (tokens - 1,)."""
    inputs = {"input_ids": batch["input_ids"]}
    if "position_ids" in batch:
        inputs["position_ids"] = batch["position_ids"]
    if use_cache is not None:
        inputs["use_cache"] = use_cache
    with torch.no_grad():
        logits = model(**inputs).logits[0, :-1]
    targets = batch["labels"][0, 1:]
    losses = torch.nn.functional.cross_entropy(logits, targets.clamp(min=0), reduction="none")
    return torch.where(targets == -100, torch.zeros_like(losses), losses)


def packed_rows(model: Any, tokenizer: Any, packed: datasets.Dataset, *, use_cache: bool | None = False):
    """Collate every packed row into one padding-free batch, as SFTTrainer does, and score it."""
    rows = packed.to_list()
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    keep = ("input_ids", "labels", "seq_lengths")
    batch = collator([{k: row[k] for k in keep if k in row} for row in rows])
    assert "attention_mask" not in batch
    seq_id = torch.tensor([t for row in rows for t in row["seq_id"]])
    position = torch.tensor([t for row in rows for t in row["position"]])
    return batch, token_losses(model, batch, use_cache=use_cache), seq_id, position


def segments(batch: dict[str, Any]) -> list[tuple[int, int]]:
    """(start, end) of every sequence in the flattened batch, from the restarts of position_ids."""
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    return list(zip(starts, [*starts[1:], batch["position_ids"].shape[1]], strict=True))


@pytest.mark.parametrize(
    ("strategy", "overflow"), [("ffd", "truncate"), ("ffd", "split"), ("bfd", None), ("bfd_split", None)]
)
def test_packed_losses_equal_each_sequence_run_alone(
    model: Any, tokenizer: Any, sequences: datasets.Dataset, strategy: str, overflow: str | None
) -> None:
    packed, report = pack(sequences, strategy, max_length=MAX_LENGTH, overflow=overflow)
    assert not report.crosses_boundaries
    assert report.rows < len(sequences)  # rows really hold several sequences
    batch, losses, seq_id, position = packed_rows(model, tokenizer, packed)

    source = sequences.to_dict()
    compared = 0
    for start, end in segments(batch):
        # each segment is one contiguous piece of one sequence, with its own tokens and labels
        sequence = int(seq_id[start])
        first = int(position[start])
        assert seq_id[start:end].eq(sequence).all()
        assert position[start:end].tolist() == list(range(first, first + end - start))
        ids = source["input_ids"][sequence][first : first + end - start]
        labels = source["labels"][sequence][first : first + end - start]
        assert batch["input_ids"][0, start:end].tolist() == ids
        assert batch["labels"][0, start + 1 : end].tolist() == labels[1:]

        alone = token_losses(model, {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])})
        in_pack = losses[start : end - 1]
        assert torch.allclose(in_pack, alone, rtol=0, atol=TOLERANCE), (strategy, sequence, first)
        compared += int((alone > 0).sum())
    assert compared > 100


def test_wrapped_is_reported_as_crossing_and_really_cuts_and_leaks(
    model: Any, tokenizer: Any, sequences: datasets.Dataset
) -> None:
    packed, report = pack(sequences, "wrapped", max_length=MAX_LENGTH)
    assert report.crosses_boundaries is True
    assert "seq_lengths" not in packed.column_names
    rows = packed.to_list()
    cut = {
        row["seq_id"][-1]
        for row, following in itertools.pairwise(rows)
        if row["seq_id"][-1] == following["seq_id"][0]
    }
    assert cut and report.sequences_cut == len(cut)  # sequences split mid-way across rows
    assert any(len(set(row["seq_id"])) > 1 for row in rows)  # rows that mix sequences

    # with no seq_lengths, a whole row is one "sequence" for the collator: tokens attend across boundaries
    batch, losses, seq_id, _ = packed_rows(model, tokenizer, packed)
    leaked = 0.0
    for start, end in segments(batch):
        row_ids = batch["input_ids"][0, start:end]
        changes = (seq_id[start + 1 : end] != seq_id[start : end - 1]).nonzero().flatten().tolist()
        for change in changes:  # a sequence starting inside the row, scored alone from its first token here
            begin = start + change + 1
            stop = begin + int((seq_id[begin:end] == seq_id[begin]).sum())
            ids = row_ids[begin - start : stop - start].tolist()
            labels = batch["labels"][0, begin:stop].tolist()
            alone = token_losses(model, {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])})
            leaked = max(leaked, float((losses[begin : stop - 1] - alone).abs().max()))
    assert leaked > 1e-3


def test_a_forward_with_the_kv_cache_on_leaks(
    model: Any, tokenizer: Any, sequences: datasets.Dataset
) -> None:
    """Documents the sharp edge: block-diagonal attention from position_ids needs ``use_cache=False``.

    transformers (``masking_utils._preprocess_mask_arguments``) looks for packed sequences only when
    ``attention_mask is None and cache is None``; with ``use_cache`` left to the config (True here), the
    model makes a ``DynamicCache`` and masks causally across the whole flattened row. SFTTrainer always
    passes ``use_cache=False`` (``compute_loss``), so training and evaluation are safe.
    """
    assert model.config.use_cache is True
    packed, _ = pack(sequences, "ffd", max_length=MAX_LENGTH)
    _, safe, _, _ = packed_rows(model, tokenizer, packed, use_cache=False)
    _, default, _, _ = packed_rows(model, tokenizer, packed, use_cache=None)
    assert float((default - safe).abs().max()) > 1e-3
