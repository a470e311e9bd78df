"""Parallel data preparation: worker processes give the serial rows, name bad rows, and stop on Ctrl-C."""

from __future__ import annotations

import gc
import multiprocessing
import os
import weakref
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data import parallel, source_tokenization
from trl_sft_kit.data import tokenize as tokenize_module
from trl_sft_kit.data.pipeline import prepare_training_data
from trl_sft_kit.data.tokenize import tokenize_dataset
from trl_sft_kit.errors import RecipeError, RowError
from trl_sft_kit.testing import sample_rows


@pytest.fixture()
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards of 7 rows, and workers from the first row on, so that a few dozen rows span many shards."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(parallel, "SHARD_ROWS", 7)
    monkeypatch.setattr(tokenize_module, "BATCH_ROWS", 3)


def _pid(start: int, end: int) -> tuple[int, int, int]:
    return os.getpid(), start, end


def test_shards_run_in_worker_processes_and_come_back_in_order(small_shards: None) -> None:
    results = list(parallel.map_shards(_pid, 100, 2))
    assert [(start, end) for _, start, end in results] == parallel.shards(100, 7)
    assert {pid for pid, _, _ in results} - {os.getpid()}  # the work left this process
    assert not multiprocessing.active_children()


def _freeze_count(start: int, end: int) -> int:
    return gc.get_freeze_count()


def test_workers_fork_with_the_heap_frozen_and_this_process_gets_it_back(small_shards: None) -> None:
    """The objects shared with the workers sit in the collector's permanent generation while they run (so
    a worker's collections do not copy the shared pages); afterwards the heap is as it was."""
    rows_here = [{"row": index} for index in range(1000)]  # objects this process holds
    assert gc.get_freeze_count() == 0
    counts = list(parallel.map_shards(_freeze_count, 30, 2))
    assert all(count >= len(rows_here) for count in counts)
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller that froze its own heap keeps it frozen
    try:
        list(parallel.map_shards(_freeze_count, 30, 2))
        # Not ``>=`` the count before: frozen objects that die meanwhile (caches, other threads) leave it.
        # The rows this test holds stay alive, so a heap unfrozen by the call would show here.
        assert gc.get_freeze_count() >= len(rows_here)
    finally:
        gc.unfreeze()


class _Result:
    """A shard's result the test can see alive or gone (``weakref``)."""

    def __init__(self, start: int) -> None:
        self.start = start


def _result(start: int, end: int) -> _Result:
    return _Result(start)


def test_the_parent_holds_a_few_shards_results_not_every_one(small_shards: None) -> None:
    """Shards are submitted a bounded window ahead and a result is let go once yielded: the parent's memory
    grows with the window, not with the dataset (every result held to the end was every token)."""
    alive: weakref.WeakSet[_Result] = weakref.WeakSet()
    starts = []
    for result in parallel.map_shards(_result, 7 * 40, 2):
        alive.add(result)
        starts.append(result.start)
        del result
        gc.collect()
        assert len(alive) <= 1  # the one yielded last is gone once the loop moves on
    assert starts == [start for start, _ in parallel.shards(7 * 40, 7)]
    assert not multiprocessing.active_children()


def test_one_process_and_small_datasets_stay_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {pid for pid, _, _ in parallel.map_shards(_pid, 5000, 1)} == {os.getpid()}
    assert parallel.workers_for(parallel.PARALLEL_MIN_ROWS - 1, 8) == 1
    assert parallel.workers_for(parallel.PARALLEL_MIN_ROWS, 2) == 2


@pytest.mark.parametrize(
    ("format", "canonical", "loss", "max_length"),
    [
        ("messages", "messages", "assistant_only", 56),
        ("messages", "messages", "all", 40),
        ("prompt_completion", "prompt_completion", "completion_only", 24),
        ("text", "text", "all", 24),
    ],
)
def test_parallel_rows_are_the_serial_rows(
    small_shards: None, tokenizer_of: Any, format: str, canonical: str, loss: str, max_length: int
) -> None:
    rows = sample_rows(format, 60)
    tokenizer = tokenizer_of()
    runs = [
        tokenize_dataset(rows, tokenizer, canonical=canonical, loss=loss, max_length=max_length, num_proc=n)
        for n in (1, 2)
    ]
    (serial, serial_report), (parallel_ds, parallel_report) = runs
    assert parallel_ds["input_ids"] == serial["input_ids"]
    assert parallel_ds["labels"] == serial["labels"]
    assert parallel_report == serial_report
    assert serial_report.rows_truncated > 0  # truncation counted the same way across shards


@pytest.mark.parametrize(
    ("format", "loss"),
    [
        ("messages", "assistant_only"),
        ("messages", "all"),
        ("prompt_completion", "completion_only"),
        ("prompt_completion", "all"),
        ("text", "all"),
    ],
)
def test_batched_rows_are_tokenize_row_row_for_row(tokenizer_of: Any, format: str, loss: str) -> None:
    tokenizer = tokenizer_of()
    rows = sample_rows(format, 20)
    batched = tokenize_module.tokenize_rows(tokenizer, rows, format, loss)
    for row, masked in zip(rows, batched, strict=True):
        assert masked == tokenize_module.tokenize_row(tokenizer, row, format, loss)


def _bad_rows() -> list[dict[str, Any]]:
    rows = sample_rows("prompt_completion", 40)
    for at in (23, 31):  # a string prompt with a message-list completion cannot be rendered
        rows[at] = {"prompt": "Hi", "completion": [{"role": "assistant", "content": "Hello"}]}
    return rows


def test_a_row_error_from_a_worker_names_file_line_and_field(small_shards: None, tokenizer_of: Any) -> None:
    tokenizer = tokenizer_of()
    messages = []
    for n in (1, 2):
        with pytest.raises(RowError) as caught:
            tokenize_dataset(
                _bad_rows(),
                tokenizer,
                canonical="prompt_completion",
                loss="completion_only",
                row_label=lambda at: f"data.jsonl, line {at + 1}",
                row_where=lambda at: {"path": "data.jsonl", "line": at + 1, "row": at},
                num_proc=n,
            )
        error = caught.value  # its attributes name the place its message names
        assert (error.path, error.line, error.row, error.field) == ("data.jsonl", 24, 23, "completion")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("data.jsonl, line 24, field 'completion': 'prompt' and 'completion' must")


def test_skipped_rows_are_the_same_in_parallel(small_shards: None, tokenizer_of: Any) -> None:
    tokenizer = tokenizer_of()
    reports = [
        tokenize_dataset(
            _bad_rows(),
            tokenizer,
            canonical="prompt_completion",
            loss="completion_only",
            on_bad_rows="skip",
            row_label=lambda at: f"line {at + 1}",
            num_proc=n,
        )[1]
        for n in (1, 2)
    ]
    assert reports[0] == reports[1]
    assert [row.where for row in reports[1].skipped] == ["line 24", "line 32"]


def test_ctrl_c_stops_every_worker_and_stores_nothing(
    small_shards: None,
    data_file: Any,
    tokenizer_of: Any,
    cache_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_progress = tokenize_module.progress

    class Interrupting:
        """The progress bar of the parent: Ctrl-C arrives while the second shard comes back."""

        def __init__(self, rows: Any, desc: str) -> None:
            self.bar = real_progress(rows, desc)
            self.updates = 0

        def update(self, n: int) -> None:
            self.updates += 1
            if self.updates == 2:
                raise KeyboardInterrupt

        def close(self) -> None:
            self.bar.close()

    def progress(rows: Any, desc: str) -> Any:
        return Interrupting(rows, desc) if desc == "tokenizing" else real_progress(rows, desc)

    monkeypatch.setattr(tokenize_module, "progress", progress)
    recipe = SFTRecipe().dataset(data_file("messages", 80)).training(dataset_num_proc=2).cache(True)
    with pytest.raises(KeyboardInterrupt):
        prepare_training_data(recipe, tokenizer_of(), use_cache=True)
    assert not multiprocessing.active_children()
    assert not cache_root.exists() or not any(cache_root.rglob("*.arrow"))


def test_compile_data_stage_with_workers_is_cached_like_serial(
    small_shards: None, data_file: Any, tokenizer_of: Any
) -> None:
    base = SFTRecipe().dataset(data_file("messages", 50)).packing("ffd").training(max_length=64).cache(True)
    serial = prepare_training_data(base.training(dataset_num_proc=1), tokenizer_of(), use_cache=True)
    parallel_run = prepare_training_data(base.training(dataset_num_proc=2), tokenizer_of(), use_cache=True)
    assert serial.cache is not None and serial.cache.state == "miss"
    assert parallel_run.cache is not None and parallel_run.cache.state == "hit"  # same rows, same key
    fresh = prepare_training_data(base.training(dataset_num_proc=2), tokenizer_of())
    assert fresh.dataset["input_ids"] == serial.dataset["input_ids"]
    assert fresh.dataset["seq_lengths"] == serial.dataset["seq_lengths"]


def test_dataset_num_proc_reaches_the_data_stage(
    data_file: Any, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    real = source_tokenization.tokenize_dataset

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["num_proc"])
        return real(*args, **kwargs)

    monkeypatch.setattr(source_tokenization, "tokenize_dataset", spy)
    prepare_training_data(
        SFTRecipe().dataset(data_file("messages", 10)).training(dataset_num_proc=3), tokenizer_of()
    )
    prepare_training_data(SFTRecipe().dataset(data_file("messages", 10)), tokenizer_of())
    assert seen == [3, None]


def test_num_proc_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(parallel.NUM_PROC_ENV, raising=False)
    assert parallel.resolve_num_proc() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(parallel.NUM_PROC_ENV, "3")
    assert parallel.resolve_num_proc() == 3
    assert parallel.resolve_num_proc(1) == 1  # the recipe's setting wins
    monkeypatch.setenv(parallel.NUM_PROC_ENV, "many")
    with pytest.raises(RecipeError, match="TRL_SFT_KIT_NUM_PROC must be a positive integer"):
        parallel.resolve_num_proc()


@pytest.fixture()
def spooled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every tokenized dataset goes through the on-disk spool, in a temporary folder of the test's own."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(parallel, "SPOOL_MIN_ROWS", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_spooled_shards_are_the_rows_in_memory_and_leave_no_file(
    small_shards: None, spooled: Path, tokenizer_of: Any
) -> None:
    rows = sample_rows("messages", 40)
    tokenizer = tokenizer_of()
    on_disk, report = tokenize_dataset(
        rows, tokenizer, canonical="messages", loss="assistant_only", num_proc=2
    )
    assert not any(spooled.iterdir())  # the file is mapped, then removed
    parallel.SPOOL_MIN_ROWS = 10**9  # type: ignore[misc]  # undone by monkeypatch
    in_memory, memory_report = tokenize_dataset(
        rows, tokenizer, canonical="messages", loss="assistant_only", num_proc=2
    )
    assert on_disk["input_ids"] == in_memory["input_ids"] and on_disk["labels"] == in_memory["labels"]
    assert report == memory_report


def test_ctrl_c_while_spooling_leaves_no_file(
    small_shards: None, spooled: Path, tokenizer_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = []
    real_write = parallel.ArrowSpool.write

    def write(self: Any, table: Any) -> None:
        writes.append(table.num_rows)
        if len(writes) == 3:
            raise KeyboardInterrupt
        real_write(self, table)

    monkeypatch.setattr(parallel.ArrowSpool, "write", write)
    with pytest.raises(KeyboardInterrupt):
        tokenize_dataset(
            sample_rows("messages", 40), tokenizer_of(), canonical="messages", loss="all", num_proc=2
        )
    assert not any(spooled.iterdir())
    assert not multiprocessing.active_children()
