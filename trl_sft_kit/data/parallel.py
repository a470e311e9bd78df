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

import collections
import gc
import itertools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from trl_sft_kit.arrow_spool import ArrowSpool
from trl_sft_kit.errors import RecipeError

__all__ = [
    "NUM_PROC_ENV",
    "PARALLEL_MIN_ROWS",
    "SHARD_ROWS",
    "SPOOL_MIN_ROWS",
    "ArrowSpool",
    "map_shards",
    "resolve_num_proc",
    "shards",
    "spools_to_disk",
]

T = TypeVar("T")

NUM_PROC_ENV = "TRL_SFT_KIT_NUM_PROC"
"""Environment variable with the number of worker processes (when the recipe sets none)."""

PARALLEL_MIN_ROWS = 2000
"""Below this many rows the data stage runs in this process: forking and gathering cost more (about
0.1-0.3 s) than splitting a second of work saves."""

SHARD_ROWS = 1000
"""The most rows one shard holds: a worker's memory grows with its shard, not with the dataset."""

IN_FLIGHT_PER_WORKER = 2
"""Shards submitted ahead per worker: enough that no worker waits, few enough that finished shards held
for the one before them stay a few shards' tokens."""

SPOOL_MIN_ROWS = 50_000
"""From this many rows on, tokenized shards are spooled to an Arrow file on disk and memory-mapped."""

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


def map_shards(task: Callable[[int, int], T], rows: int, num_proc: int) -> Generator[T, None, None]:
    """``task(start, end)`` for every shard of ``rows`` rows, yielded in shard order.

    Runs over ``workers_for(rows, num_proc)`` forked processes; with one, in this process. A caller that
    stops early (an error, Ctrl-C) must ``close()`` the generator: that terminates the workers at once.
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
    # Every object this process holds moves to the collector's permanent generation before the fork: a
    # worker's collections then never walk (and write to) the pages it shares with this process, which
    # would copy them all, the more the larger this process's heap (the rows, other datasets, a model).
    freeze = gc.get_freeze_count() == 0  # one frozen by the caller stays as it was
    if freeze:
        gc.freeze()
    executor = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_sigint
    )
    try:
        # A bounded window of shards in flight: a result is let go once yielded, and no more than
        # ``IN_FLIGHT_PER_WORKER`` per worker wait, done, for the one before them; the results of every
        # shard held to the end would be the whole dataset's tokens in this process.
        pending = iter(ranges)
        window: collections.deque[Future[Any]] = collections.deque(
            executor.submit(_run, bounds)
            for bounds in itertools.islice(pending, workers * IN_FLIGHT_PER_WORKER)
        )
        while window:
            result = window.popleft().result()  # a worker that dies (killed, out of memory) raises
            following = next(pending, None)
            if following is not None:
                window.append(executor.submit(_run, following))
            yield result
            del result
    finally:
        # Ctrl-C, an error, or a caller that stopped early: no worker outlives the call.
        _stop(executor)
        if freeze:
            gc.unfreeze()
        _TASK = previous_task
        if previous_env is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous_env


def _stop(executor: ProcessPoolExecutor) -> None:
    """Shut the pool down with every worker terminated and joined, those its manager thread forks late too.

    The pool's own dict of processes is read live (the manager thread may replace a worker while the pool
    stops), and the manager thread is joined before the last sweep, so that no process is left running.
    """
    processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
    manager = getattr(executor, "_executor_manager_thread", None)
    executor.shutdown(wait=False, cancel_futures=True)
    while True:
        for process in list(processes.values()):
            if process.is_alive():
                process.terminate()
        for process in list(processes.values()):
            process.join()
        if manager is None or not manager.is_alive():
            break
        manager.join(timeout=0.1)
    for process in list(processes.values()):
        if process.is_alive():
            process.terminate()
        process.join()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(bounds: tuple[int, int]) -> Any:
    assert _TASK is not None  # set before the pool forked
    return _TASK(*bounds)


def spools_to_disk(rows: int) -> bool:
    """Whether shards of ``rows`` rows go through an ``ArrowSpool`` (Linux, from ``SPOOL_MIN_ROWS`` rows)."""
    return sys.platform.startswith("linux") and rows >= SPOOL_MIN_ROWS
