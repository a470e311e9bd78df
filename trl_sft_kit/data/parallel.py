"""Running a data stage over worker processes, shard by shard, with the serial result.

The rows are cut into contiguous shards of at most ``SHARD_ROWS`` rows; each shard is worked on by one
process and the results come back in shard order, so the output is the serial output row for row.
Workers are forked (Linux): they inherit the rows, the tokenizer and the shard function without any
pickling, and only send back compact results (numpy arrays). Where ``fork`` is not available, and for
fewer than ``PARALLEL_MIN_ROWS`` rows (process start-up costs more than it saves), the shards run in
this process.

How many workers: ``.training(dataset_num_proc=N)``, else ``$TRL_SFT_KIT_NUM_PROC``, else the cores this
process may run on (``os.sched_getaffinity``). ``1`` runs everything in this process.

Ctrl-C (or any error) terminates every worker before it propagates; workers ignore SIGINT themselves, so
the parent alone decides, and nothing is written to disk by a worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from trl_sft_kit.errors import RecipeError

__all__ = ["NUM_PROC_ENV", "PARALLEL_MIN_ROWS", "SHARD_ROWS", "map_shards", "resolve_num_proc", "shards"]

T = TypeVar("T")

NUM_PROC_ENV = "TRL_SFT_KIT_NUM_PROC"
"""Environment variable with the number of worker processes (when the recipe sets none)."""

PARALLEL_MIN_ROWS = 2000
"""Below this many rows the data stage runs in this process: forking and gathering cost more (about
0.1-0.3 s) than splitting a second of work saves."""

SHARD_ROWS = 1000
"""The most rows one shard holds: a worker's memory grows with its shard, not with the dataset."""

_TASK: Callable[[int, int], Any] | None = None  # the shard function the forked workers inherit


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_num_proc(requested: int | None = None) -> int:
    """The number of worker processes: ``requested``, else ``$TRL_SFT_KIT_NUM_PROC``, else the cores.

    Raises:
        RecipeError: the number (or the environment variable) is not a positive integer.
    """
    if requested is None:
        value = os.environ.get(NUM_PROC_ENV, "").strip()
        if not value:
            return available_cores()
        try:
            requested = int(value)
        except ValueError:
            raise RecipeError(
                f"${NUM_PROC_ENV} must be a positive integer (got {value!r}); unset it to use every core."
            ) from None
        where = f"${NUM_PROC_ENV}"
    else:
        where = "dataset_num_proc"
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise RecipeError(f"{where} must be a positive integer (got {requested!r}); 1 prepares serially.")
    return requested


def shards(rows: int, size: int | None = None) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` ranges covering ``rows`` rows, each at most ``size`` (``SHARD_ROWS``)."""
    size = SHARD_ROWS if size is None else size
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def workers_for(rows: int, num_proc: int) -> int:
    """How many processes ``map_shards`` uses for ``rows`` rows (1: this process)."""
    if num_proc <= 1 or rows < PARALLEL_MIN_ROWS or not _can_fork():
        return 1
    return min(num_proc, len(shards(rows)))


def map_shards(task: Callable[[int, int], T], rows: int, num_proc: int) -> Iterator[T]:
    """``task(start, end)`` for every shard of ``rows`` rows, yielded in shard order.

    Runs over ``workers_for(rows, num_proc)`` forked processes; with one, in this process. The caller
    may stop iterating early (an error in a shard): the workers are then terminated.
    """
    global _TASK
    ranges = shards(rows)
    workers = workers_for(rows, num_proc)
    if workers == 1:
        for start, end in ranges:
            yield task(start, end)
        return
    previous_task, _TASK = _TASK, task
    # Rust tokenizers warn after a fork once their thread pool has run; each worker is one thread anyway.
    previous_env = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    executor = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_sigint
    )
    try:
        futures = [executor.submit(_run, bounds) for bounds in ranges]
        for future in futures:
            yield future.result()  # a worker that dies (killed, out of memory) raises BrokenProcessPool
    finally:
        # Ctrl-C, an error, or a caller that stopped early: no worker outlives the call.
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        _TASK = previous_task
        if previous_env is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous_env


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(bounds: tuple[int, int]) -> Any:
    assert _TASK is not None  # set before the pool forked
    return _TASK(*bounds)
