"""The packer protocol, registry, reports and errors, on small datasets."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys
from typing import Any

import attrs
import pytest

from trl_sft_kit.errors import DatasetError, PluginError, RecipeError
from trl_sft_kit.packing import (
    FFDPacker,
    Packer,
    PackingReport,
    PackResult,
    TRLPacker,
    get_packer,
    pack,
    packer_names,
    register_packer,
    unregister_packer,
)

datasets = pytest.importorskip("datasets")

LENGTHS = [5, 17, 1, 0, 9, 12, 30, 3, 8, 8, 2, 25, 14, 6, 11]


def dataset(lengths: list[int] = LENGTHS) -> Any:
    """Unique tokens per position; labels mask every third token."""
    ids, start = [], 0
    for length in lengths:
        ids.append(list(range(start, start + length)))
        start += length
    labels = [[-100 if t % 3 == 0 else t for t in row] for row in ids]
    return datasets.Dataset.from_dict({"input_ids": ids, "labels": labels})


def test_builtins_are_registered_in_order_with_the_kits_ffd() -> None:
    assert packer_names()[:4] == ("ffd", "bfd", "bfd_split", "wrapped")
    assert isinstance(get_packer("ffd"), FFDPacker)
    for name in ("bfd", "bfd_split", "wrapped"):
        packer = get_packer(name)
        assert isinstance(packer, TRLPacker) and packer.trl_strategy == name
    assert not hasattr(get_packer("ffd"), "trl_strategy")  # TRL cannot do it: the kit packs
    assert [get_packer(n).crosses_boundaries for n in packer_names()[:4]] == [False, False, False, True]
    assert "attention crosses" in get_packer("wrapped").description  # type: ignore[attr-defined]
    assert all(isinstance(get_packer(n), Packer) for n in packer_names()[:4])


@pytest.mark.parametrize("name", ["ffd", "bfd", "bfd_split", "wrapped"])
def test_every_builtin_returns_a_result_with_a_report(name: str) -> None:
    result = get_packer(name).pack(dataset(), max_length=16)
    assert isinstance(result, PackResult)
    packed, report = result
    lengths = [len(row) for row in packed["input_ids"]]
    assert max(lengths) <= 16
    assert report.strategy == name and report.max_length == 16
    assert report.rows == len(packed) and report.tokens == sum(lengths)
    assert report.sequences == len(LENGTHS) and report.sequences_empty == 1
    assert report.sequences_overlong == sum(n > 16 for n in LENGTHS) == 3
    assert report.lower_bound == -(-report.tokens // 16) and report.rows >= report.lower_bound
    assert report.crosses_boundaries is (name == "wrapped")
    assert ("seq_lengths" in packed.column_names) is (name != "wrapped")
    kept = sum(LENGTHS) if name in ("bfd_split", "wrapped") else sum(min(n, 16) for n in LENGTHS)
    assert report.tokens == kept and report.tokens_truncated == sum(LENGTHS) - kept
    assert name in report.summary()


def test_reports_count_cut_sequences_for_split_and_wrapped() -> None:
    split = pack(dataset(), "bfd_split", max_length=16).report
    assert split.sequences_cut == split.sequences_overlong == 3
    trained = datasets.Dataset.from_dict(
        {"input_ids": dataset()["input_ids"], "labels": dataset()["input_ids"]}
    )
    kit_split = pack(trained, "ffd", max_length=16, overflow="split").report  # every piece carries loss
    assert kit_split.sequences_cut == 3 and kit_split.tokens == sum(LENGTHS)
    report = pack(dataset(), "wrapped", max_length=16).report
    # work the cuts out by hand: a boundary every 16 tokens of the whole stream
    cut, start = 0, 0
    for n in LENGTHS:
        cut += n > 0 and (start // 16) != ((start + n - 1) // 16)
        start += n
    assert report.sequences_cut == cut > 0
    assert "cut across rows" in report.summary() and "attention crosses" in report.summary()


def test_the_kits_ffd_reaches_the_bound_where_trls_chunks_do_not() -> None:
    import numpy as np

    lengths = np.random.default_rng(0).integers(1, 200, 3000).tolist()  # three TRL chunks of 1,000 rows
    data = dataset(lengths)
    kit = pack(data, "ffd", max_length=256).report
    trl = pack(data, "bfd", max_length=256).report
    assert kit.tokens == trl.tokens
    assert kit.rows_over_bound == 0 < trl.rows_over_bound


def test_overflow_is_the_packers_default_or_what_is_asked() -> None:
    assert pack(dataset(), "ffd", max_length=16).report.tokens_truncated > 0
    assert FFDPacker(overflow="split").pack(dataset(), max_length=16).report.tokens_truncated == 0
    assert (
        FFDPacker(overflow="split")
        .pack(dataset(), max_length=16, overflow="truncate")
        .report.tokens_truncated
    )
    with pytest.raises(RecipeError, match=r"'bfd' cannot take overflow='split'.*'ffd'"):
        pack(dataset(), "bfd", max_length=16, overflow="split")
    assert pack(dataset(), "bfd_split", max_length=16, overflow="split").report.tokens_truncated == 0
    with pytest.raises(RecipeError, match="'overflow' must be one of"):
        pack(dataset(), "ffd", max_length=16, overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be in"):
        FFDPacker(overflow="drop")  # type: ignore[arg-type]


@pytest.mark.parametrize("max_length", [0, -1, 2.5, True, None])
def test_bad_max_length_is_a_recipe_error(max_length: Any) -> None:
    with pytest.raises(RecipeError, match="'max_length' must be a positive integer"):
        pack(dataset(), "ffd", max_length=max_length)


@attrs.frozen
class LegacyPacker:
    """A plug-in written against the old protocol: returns the bare dataset, takes no overflow."""

    name: str = "legacy_for_tests"
    crosses_boundaries: bool = False
    cut: int = 16

    def pack(self, dataset: Any, *, max_length: int) -> Any:
        return dataset.map(
            lambda row: {"input_ids": row["input_ids"][: self.cut], "labels": row["labels"][: self.cut]}
        )


def test_pack_reports_for_plugins_that_return_only_the_dataset() -> None:
    register_packer(LegacyPacker())
    try:
        report = pack(dataset(), "legacy_for_tests", max_length=16).report
        assert report.strategy == "legacy_for_tests" and report.rows == len(LENGTHS)
        assert report.tokens_truncated == sum(max(n - 16, 0) for n in LENGTHS)
        with pytest.raises(RecipeError, match="does not take an 'overflow' option"):
            pack(dataset(), "legacy_for_tests", max_length=16, overflow="split")
        with pytest.raises(PluginError, match="made a row of 30 tokens"):
            pack(dataset(), LegacyPacker(name="loose", cut=100), max_length=16)
    finally:
        unregister_packer("legacy_for_tests")


def test_unknown_packer_lists_the_names() -> None:
    with pytest.raises(PluginError, match="no packer named 'nope'; available: 'ffd', 'bfd'"):
        pack(dataset(), "nope", max_length=16)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: datasets.Dataset.from_dict({"text": ["a"]}), "needs tokenized rows with an 'input_ids'"),
        (lambda: dataset().add_column("source", ["x"] * len(LENGTHS)), "'source' .* is not a list"),
        (
            lambda: dataset().map(lambda r: {"labels": r["labels"][:1]}),
            "'labels' does not have as many values",
        ),
        (lambda: pack(dataset(), "ffd", max_length=16).dataset, "packed already"),
        (lambda: dataset().to_iterable_dataset(), "needs a datasets.Dataset"),
        (lambda: datasets.DatasetDict({"train": dataset()}), "pack each split"),
    ],
)
def test_datasets_that_cannot_be_packed_say_why(make: Any, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        pack(make(), "ffd", max_length=16)


def test_selected_and_shuffled_datasets_pack_their_selection() -> None:
    view = dataset().shuffle(seed=3).select(range(2, 12))
    assert view._indices is not None  # an indices mapping, not a copy
    got = pack(view, "ffd", max_length=16)
    expected = pack(view.flatten_indices(), "ffd", max_length=16)
    assert got.dataset.to_dict() == expected.dataset.to_dict()
    assert got.report == expected.report


def test_output_format_and_fingerprint_follow_the_input() -> None:
    torch_rows = dataset().with_format("torch")
    packed = pack(torch_rows, "ffd", max_length=16).dataset
    assert packed.format["type"] == "torch"
    assert set(packed[0]) == {"input_ids", "labels", "seq_lengths"}
    again = pack(torch_rows, "ffd", max_length=16).dataset
    other = pack(torch_rows, "ffd", max_length=32).dataset
    assert packed._fingerprint == again._fingerprint != other._fingerprint


def test_an_eval_split_packs_like_a_train_split() -> None:
    splits = dataset().train_test_split(test_size=0.4, seed=0)
    for split in splits.values():
        packed, report = pack(split, "ffd", max_length=16)
        assert report.sequences == len(split) and sum(map(sum, packed["seq_lengths"])) == report.tokens


def test_report_values_and_summary() -> None:
    report = PackingReport("ffd", False, max_length=10, sequences=5, rows=3, tokens=25, tokens_truncated=4,
                           sequences_overlong=1, sequences_empty=1)  # fmt: skip
    assert (report.lower_bound, report.rows_over_bound) == (3, 0)
    assert report.fill == pytest.approx(25 / 30) and report.excess == 0.0
    assert report.summary() == (
        "ffd: 5 sequences -> 3 rows of 10 tokens (lower bound 3, +0 = +0.000%), fill 83.33%; "
        "4 tokens truncated from 1 over-long sequences; 1 sequences or pieces without a token carrying loss "
        "dropped"
    )
    assert PackingReport("x", False, max_length=4, sequences=0, rows=0, tokens=0).fill == 1.0
    with pytest.raises(ValueError, match="'rows' must be >= 0"):
        PackingReport("x", False, max_length=4, sequences=0, rows=-1, tokens=0)


@pytest.mark.parametrize("module", ["ffd", "packers", "report", "rows"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"trl_sft_kit.packing.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_importing_the_package_stays_light() -> None:
    heavy = ("numpy", "pyarrow", "datasets", "torch", "trl")
    script = (
        "import json, sys, trl_sft_kit.packing as p; p.packer_names(); "
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
