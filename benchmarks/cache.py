"""Preprocessing-cache benchmark: the first ``compile()`` of a recipe against the second.

The first compile reads, detects, converts, tokenizes (with the kit's loss masks) and packs the data, then
stores it in the cache; the second finds the entry by its key (the data's SHA-256, the recipe's data
part, the tokenizer, the kit's version) and loads the prepared rows instead. Both compiles are the whole
``SFTRecipe.compile()``: tokenizer, data, model (the offline tiny model), ``SFTConfig`` and
``SFTTrainer``, after a warm-up compile that pays for importing torch, TRL and peft. The data stage is
also timed alone: on a hit, and after the data file changed by one character (a miss again).

Data: ``trl_sft_kit.testing.sample_rows`` written to a JSON Lines file, chat ``messages`` by default, with
LoRA and ``ffd`` packing at ``max_length`` 512. The cache goes to a new temporary folder, so the first
compile is always a miss.

Usage::

    python benchmarks/cache.py                       # 50,000 chat rows
    python benchmarks/cache.py --rows 100000 --format alpaca
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")


def folder_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def timed_compile(recipe: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    compiled = recipe.compile()
    return time.perf_counter() - started, compiled


def timed_data_stage(recipe: Any) -> tuple[float, Any]:
    """The data stage as ``compile()`` runs it (with the cache), with the tokenizer already loaded."""
    from trl_sft_kit.compile import resolve_model
    from trl_sft_kit.data.pipeline import prepare_training_data
    from trl_sft_kit.tokenizer import apply_tokens, load_tokenizer

    spec, origin = resolve_model(recipe)
    tokenizer = load_tokenizer(spec, origin)
    apply_tokens(tokenizer, recipe)
    started = time.perf_counter()
    data = prepare_training_data(recipe, tokenizer, use_cache=True)
    return time.perf_counter() - started, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows of sample data (default 50,000)")
    parser.add_argument("--format", default="messages", help="sample data format (default messages)")
    args = parser.parse_args(argv)

    from trl_sft_kit import SFTRecipe
    from trl_sft_kit.testing import cached_tiny_model_dir, write_sample_dataset

    with tempfile.TemporaryDirectory(prefix="trl-sft-kit-cache-bench-") as scratch:
        root = Path(scratch)
        os.environ["TRL_SFT_KIT_CACHE"] = str(root / "cache")
        model = cached_tiny_model_dir("qwen2_5")
        data = write_sample_dataset(root / f"{args.format}.jsonl", args.format, args.rows)
        recipe = (
            SFTRecipe()
            .model(model)
            .dataset(data)
            .lora(r=8)
            .packing("ffd")
            .cache(True)  # on by default from 1 MiB of data; explicit so that --rows may be small
            .training(output_dir=str(root / "out"), max_length=512, report_to="none", save_strategy="no")
        )
        print(
            f"{args.rows:,} {args.format} rows, {data.stat().st_size / 2**20:.1f} MiB of JSON Lines",
            flush=True,
        )
        # Warm up: the first compile in a process also imports torch, TRL and peft; pay that before timing.
        recipe.dataset([{"text": "warm up"}]).cache(False).compile()

        first, compiled = timed_compile(recipe)
        assert compiled.data.cache.state == "miss", compiled.data.cache
        second, again = timed_compile(recipe)
        assert again.data.cache.state == "hit", again.data.cache
        assert again.data.dataset["input_ids"][:50] == compiled.data.dataset["input_ids"][:50]
        data_hit, _ = timed_data_stage(recipe)
        entry = Path(again.data.cache.path)

        text = data.read_text(encoding="utf-8")
        data.write_text(text.replace("?", "?!", 1), encoding="utf-8")
        data_miss, changed = timed_data_stage(recipe)
        assert changed.cache.state == "miss", changed.cache

        packed = compiled.packing
        print(
            f"prepared: {compiled.tokenization.rows_out:,} sequences, {compiled.tokenization.tokens:,} tokens"
            + (f" -> {packed.rows:,} packed rows" if packed is not None else "")
        )
        print(f"cache entry: {folder_size(entry) / 2**20:.1f} MiB at {entry}")
        print()
        print(f"{'':34} {'seconds':>8}")
        print(f"{'compile() 1st (miss: prepare+store)':34} {first:8.2f}")
        print(f"{'compile() 2nd (hit: load)':34} {second:8.2f}   {first / second:5.1f}x faster")
        print(f"{'data stage, hit':34} {data_hit:8.2f}")
        print(f"{'data stage, after a data change':34} {data_miss:8.2f}   (a miss: prepared again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
