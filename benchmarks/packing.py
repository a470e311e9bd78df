"""Packing benchmark: the kit's global ``ffd`` against TRL's ``pack_dataset(..., "bfd")``.

Both run in this process on the same ``datasets.Dataset`` (one ``input_ids`` column of int32 tokens, its
sequence lengths drawn from a synthetic SFT distribution) and are timed end to end: from the Dataset in
to the packed Dataset out. For each it prints the wall time, the rows, how far the rows are above the
volume lower bound ``ceil(tokens / max_length)`` and the fill efficiency, then the speed-up.

Distributions: log-normal (mu=5.5, sigma=1.0: median 245 tokens, mean ~400) and gamma(shape=5,
scale=20) (mean 100), lengths rounded and at least 1 (longer than ``max_length`` ones are truncated by
both packers). Sizes 100k and 1M sequences; max_length 2048 and 4096.

Usage::

    python benchmarks/packing.py            # all 8 configurations (needs ~8 GiB of memory, minutes)
    python benchmarks/packing.py --quick    # 100k sequences only
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pyarrow as pa

SEED = 0
DISTRIBUTIONS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "lognormal": lambda rng, n: rng.lognormal(mean=5.5, sigma=1.0, size=n),
    "gamma": lambda rng, n: rng.gamma(shape=5.0, scale=20.0, size=n),
}


def synthetic_dataset(distribution: str, n: int) -> Any:
    """A Dataset of ``n`` sequences with lengths from ``distribution`` and small int32 token values."""
    from datasets import Dataset

    rng = np.random.default_rng(SEED)
    lengths = np.maximum(np.rint(DISTRIBUTIONS[distribution](rng, n)), 1).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    values = (np.arange(offsets[-1], dtype=np.int32) % 32_000).astype(np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    return Dataset(pa.table({"input_ids": column}))


def row_lengths(dataset: Any) -> np.ndarray:
    """Tokens in every row of a packed Dataset."""
    import pyarrow.compute as pc

    column = dataset.with_format("arrow")[:]["input_ids"]
    return np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False), dtype=np.int64)


def measure(label: str, run: Callable[[], Any], max_length: int) -> dict[str, Any]:
    """Time ``run`` once and describe its output against the lower bound."""
    gc.collect()
    start = time.perf_counter()
    packed = run()
    elapsed = time.perf_counter() - start
    lengths = row_lengths(packed)
    assert int(lengths.max()) <= max_length, f"{label}: a row is longer than max_length"
    tokens = int(lengths.sum())
    rows = int(lengths.size)
    bound = -(-tokens // max_length)
    del packed
    gc.collect()
    return {
        "label": label,
        "seconds": elapsed,
        "rows": rows,
        "bound": bound,
        "tokens": tokens,
        "excess": rows / bound - 1.0,
        "fill": tokens / (rows * max_length),
    }


def bench(distribution: str, n: int, max_length: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the kit's ffd and TRL's bfd on the same dataset."""
    from trl.data_utils import pack_dataset

    from trl_sft_kit.packing import pack

    dataset = synthetic_dataset(distribution, n)
    kit = measure("kit ffd", lambda: pack(dataset, "ffd", max_length=max_length).dataset, max_length)
    trl = measure("trl bfd", lambda: pack_dataset(dataset, max_length, "bfd"), max_length)
    assert kit["tokens"] == trl["tokens"], "the two packers kept different numbers of tokens"
    return kit, trl


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table row per configuration and packer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k sequences only")
    args = parser.parse_args(argv)

    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    sizes = (100_000,) if args.quick else (100_000, 1_000_000)
    header = (
        f"{'distribution':<10} {'n':>9} {'max_len':>7} {'packer':<8} {'seconds':>8} {'rows':>9} "
        f"{'bound':>9} {'over bound':>11} {'fill':>8} {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        for distribution in DISTRIBUTIONS:
            for max_length in (2048, 4096):
                kit, trl = bench(distribution, n, max_length)
                for result in (kit, trl):
                    speedup = f"{trl['seconds'] / kit['seconds']:.1f}x" if result is kit else ""
                    print(
                        f"{distribution:<10} {n:>9,} {max_length:>7} {result['label'].split()[1]:<8} "
                        f"{result['seconds']:>8.2f} {result['rows']:>9,} {result['bound']:>9,} "
                        f"{result['excess']:>10.3%} {result['fill']:>8.3%} {speedup:>8}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
