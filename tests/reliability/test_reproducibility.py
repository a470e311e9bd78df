"""Reproducibility: the same recipe and seed give the same loss curve on CPU, and the output folder holds
what it takes to repeat a run: the recipe, the library versions and the fingerprint of the data.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe, TrainResult
from trl_sft_kit.runs import CHECKPOINT_RECORD, checkpoints, data_fingerprint

CHAT = Path(__file__).resolve().parents[2] / "examples" / "data" / "chat_sample_data.jsonl"

RecipeFor = Callable[..., SFTRecipe]


@pytest.mark.slow
def test_the_same_recipe_and_seed_give_the_same_loss_curve_and_another_seed_another(
    recipe_for: RecipeFor, reference_run: TrainResult, tmp_path: Path
) -> None:
    # A fresh compile of the same recipe, trained into a copy of the reference's folder: overwrite=True
    # clears what the earlier run left (checkpoints, weights, run files) before it starts.
    out = tmp_path / "again"
    shutil.copytree(reference_run.output_dir, out)
    (out / "checkpoint-99").mkdir()
    again = recipe_for(out).train(overwrite=True)
    assert not (out / "checkpoint-99").exists()
    assert again.recipe is not None
    every, steps = again.recipe.training_fields["save_steps"], again.global_step
    assert [path.name for path in checkpoints(out)] == [
        f"checkpoint-{n}" for n in range(every, steps + 1, every)
    ]
    assert len(again.losses) == again.global_step == reference_run.global_step
    assert again.losses == reference_run.losses  # exactly: same seed, same data order, same CPU kernels

    other = recipe_for(tmp_path / "other", seed=1, max_steps=2).train()
    assert max(abs(a - b) for a, b in zip(other.losses, reference_run.losses[:2], strict=True)) > 1e-4


def test_the_seed_is_the_recipes_and_orders_the_data(recipe_for: RecipeFor, tmp_path: Path) -> None:
    compiled = recipe_for(tmp_path / "out").compile()
    assert compiled.config.seed == 42 and compiled.config.data_seed is None  # the sampler takes the seed
    seeded = recipe_for(tmp_path / "out", seed=7).compile()
    assert seeded.config.seed == 7 and seeded.config.data_seed is None


def test_the_output_folder_holds_the_recipe_versions_and_data_fingerprint(reference_run: TrainResult) -> None:
    out = reference_run.output_dir
    assert SFTRecipe.from_yaml(out / "recipe.yaml") == reference_run.recipe
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert {"python", "torch", "transformers", "trl", "peft", "datasets", "trl_sft_kit"} <= set(
        info["versions"]
    )
    assert info["losses"] == list(reference_run.losses)

    fingerprint = info["data_fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint["sha256"])
    assert fingerprint["rows"] == info["tokenization"]["rows_out"]
    assert fingerprint["tokens"] == info["tokenization"]["tokens"]
    (source,) = fingerprint["sources"]
    assert source["kind"] == "file" and source["path"] == str(CHAT)
    assert source["sha256"] == hashlib.sha256(CHAT.read_bytes()).hexdigest()
    assert fingerprint["sha256"] in (out / "README.md").read_text(encoding="utf-8")

    for checkpoint in checkpoints(out):  # each checkpoint records what resume must find again
        record = json.loads((checkpoint / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
        assert record["data_fingerprint"] == fingerprint
        assert record["seeds"] == {"seed": 42, "data_seed": None}


def test_changing_one_row_changes_the_fingerprint(recipe_for: RecipeFor, tmp_path: Path) -> None:
    lines = CHAT.read_text(encoding="utf-8").splitlines(keepends=True)

    def fingerprint(name: str, rows: list[str]) -> dict[str, object]:
        data = tmp_path / name
        data.write_text("".join(rows), encoding="utf-8")
        compiled = recipe_for(tmp_path / "out", data=data).compile()
        return data_fingerprint(compiled.trainer.train_dataset, compiled.recipe.dataset_specs)

    first = fingerprint("a.jsonl", lines)
    assert fingerprint("b.jsonl", lines)["sha256"] == first["sha256"]  # the same rows, another file

    changed = list(lines)
    changed[5] = changed[5].replace('"content": "', '"content": "Well, ', 1)
    assert changed[5] != lines[5]
    edited = fingerprint("c.jsonl", changed)
    assert edited["sha256"] != first["sha256"]
    assert edited["sources"] != first["sources"]

    swapped = list(lines)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert fingerprint("d.jsonl", swapped)["sha256"] != first["sha256"]  # the order of rows counts too

    assert fingerprint("e.jsonl", [*lines, "\n\n"])["sha256"] == first["sha256"]  # blank lines do not


def test_a_streamed_dataset_is_not_read_ahead_for_its_fingerprint(tmp_path: Path) -> None:
    from datasets import IterableDataset

    from trl_sft_kit.specs import DatasetSpec

    def rows() -> object:
        yield {"input_ids": [1, 2, 3], "labels": [1, 2, 3]}
        raise AssertionError("the stream was read")

    data = tmp_path / "big.jsonl"
    shutil.copy(CHAT, data)
    specs = [DatasetSpec(str(data), streaming=True), DatasetSpec(str(CHAT))]
    fingerprint = data_fingerprint(IterableDataset.from_generator(rows), specs)
    assert fingerprint["sha256"] is None and fingerprint["streamed"] is True
    streamed, whole = fingerprint["sources"]
    assert streamed == {"kind": "file", "path": str(data), "sha256": None, "bytes": data.stat().st_size}
    assert whole["sha256"] == hashlib.sha256(CHAT.read_bytes()).hexdigest()
