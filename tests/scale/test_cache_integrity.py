"""A cache entry is checked before it is trained: changed, added or missing data files, other columns or row
counts are a logged miss and the entry is rebuilt; the cache is the user's alone (issue 14)."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data import cache
from trl_sft_kit.data.pipeline import PreparedData, prepare_training_data


def prepare(recipe: SFTRecipe, tokenizer: Any) -> PreparedData:
    return prepare_training_data(recipe, tokenizer, use_cache=True)


@pytest.fixture()
def recipe(data_file: Any) -> SFTRecipe:
    return SFTRecipe().dataset(data_file("messages", 24)).training(max_length=128, seed=1).cache(True)


def _entry(data: PreparedData) -> Path:
    assert data.cache is not None and data.cache.path is not None
    return Path(data.cache.path)


def _arrow(entry: Path) -> Path:
    files = sorted((entry / "train").glob("*.arrow"))
    assert files
    return files[0]


def _tamper_tokens(path: Path) -> None:
    """Rewrite the Arrow file so that it still reads, with other token ids: what a planted entry does."""
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.BufferReader(path.read_bytes())).read_all()  # a copy, not a mapping
    ids = [[token % 7 for token in row] for row in table.column("input_ids").to_pylist()]
    table = table.set_column(
        table.schema.get_field_index("input_ids"), "input_ids", pa.array(ids, pa.list_(pa.int64()))
    )
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _meta(entry: Path) -> dict[str, Any]:
    return json.loads((entry / "meta.json").read_text(encoding="utf-8"))


def test_a_tampered_entry_is_a_logged_miss_and_rebuilt(
    recipe: SFTRecipe, tokenizer_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = prepare(recipe, tokenizer_of())
    entry = _entry(first)
    _tamper_tokens(_arrow(entry))
    with caplog.at_level(logging.WARNING, logger="trl_sft_kit.data.cache"):
        second = prepare(recipe, tokenizer_of())
    assert second.cache is not None and second.cache.state == "miss"
    assert second.dataset["input_ids"] == first.dataset["input_ids"]  # the real rows, not the planted ones
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert str(entry) in warned and "changed" in warned and _arrow(entry).name in warned
    third = prepare(recipe, tokenizer_of())  # the rebuilt entry is a hit again
    assert third.cache is not None and third.cache.state == "hit"
    assert third.dataset["input_ids"] == first.dataset["input_ids"]


def test_an_added_data_file_is_a_miss(
    recipe: SFTRecipe, tokenizer_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _entry(prepare(recipe, tokenizer_of()))
    (entry / "train" / "data-00001-of-00001.arrow").write_bytes(_arrow(entry).read_bytes())
    with caplog.at_level(logging.WARNING, logger="trl_sft_kit.data.cache"):
        again = prepare(recipe, tokenizer_of())
    assert again.cache is not None and again.cache.state == "miss"
    assert "not written by the kit" in caplog.text


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda shape: shape.update(rows=shape["rows"] + 1), "rows, not"),
        (lambda shape: shape.update(columns=[*shape["columns"], "labels_extra"]), "columns"),
    ],
    ids=["row count", "columns"],
)
def test_other_columns_or_rows_than_recorded_are_a_miss(
    recipe: SFTRecipe, tokenizer_of: Any, caplog: pytest.LogCaptureFixture, change: Any, said: str
) -> None:
    entry = _entry(prepare(recipe, tokenizer_of()))
    meta = _meta(entry)
    change(meta["train_shape"])
    (entry / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="trl_sft_kit.data.cache"):
        again = prepare(recipe, tokenizer_of())
    assert again.cache is not None and again.cache.state == "miss"
    assert said in caplog.text


def test_an_entry_without_digests_is_not_trusted(recipe: SFTRecipe, tokenizer_of: Any) -> None:
    entry = _entry(prepare(recipe, tokenizer_of()))
    meta = _meta(entry)
    del meta["files"]
    (entry / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    again = prepare(recipe, tokenizer_of())
    assert again.cache is not None and again.cache.state == "miss"


def test_a_folder_without_meta_is_replaced_not_kept(recipe: SFTRecipe, tokenizer_of: Any) -> None:
    entry = _entry(prepare(recipe, tokenizer_of()))
    (entry / "meta.json").unlink()
    again = prepare(recipe, tokenizer_of())
    assert again.cache is not None and again.cache.state == "miss" and "stored" in again.cache.reason
    assert (entry / "meta.json").is_file()  # repaired, not left broken for ever
    hit = prepare(recipe, tokenizer_of())
    assert hit.cache is not None and hit.cache.state == "hit"


def test_the_cache_folder_and_entries_are_private(recipe: SFTRecipe, tokenizer_of: Any) -> None:
    entry = _entry(prepare(recipe, tokenizer_of()))
    for folder in (entry.parent, entry):
        assert stat.S_IMODE(folder.stat().st_mode) == cache.PRIVATE_MODE, folder
