"""Data preparation benchmark: the kit's ``compile()`` data stage against ``trl.SFTTrainer``'s own.

Same process, same rows, same tokenizer (the kit's tiny byte-level BPE with the ``qwen2_5`` chat
template), ``max_length`` 1024, no packing:

- prompt-completion: the kit's ``prepare_training_data`` (``loss("auto")``: completion only) against
  ``SFTTrainer._prepare_dataset`` with TRL's defaults (``completion_only_loss=None``: completion only);
- multi-turn chat with assistant-only loss: the kit's ``loss("assistant_only")`` on the plain template
  against TRL's ``assistant_only_loss=True``, for which TRL swaps in its training twin
  (``qwen2_5_training``, ``{% generation %}`` markers).

Each is run with the defaults (the kit: every core; TRL: ``dataset_num_proc=None``, one process) and
both with the same ``dataset_num_proc`` (1 and 2), each ``--repeat`` times (the fastest run is shown: on
a shared machine the others measure the neighbours), and the ratios are printed. The rows are LLaMA-Factory's
alpaca demo (``examples/data/alpaca_sample_data.jsonl``) repeated, with a row number in the instruction
so that no two rows are equal; a chat row is two alpaca rows as two user/assistant turns after a system
message. The TRL side is given a ``datasets.Dataset`` already built; the kit is given the Python rows
(it detects and converts them: that is part of its time).

Then the kit alone on ``--big-rows`` chat rows (1M by default), written to a JSONL file and read from it
in a fresh process with the cache off: time, rows/s and peak RSS (``ru_maxrss`` of that process and of its
largest worker).

Usage::

    python benchmarks/prepare.py                          # 20k rows each, then 1M chat rows (minutes)
    python benchmarks/prepare.py --rows 5000 --big-rows 50000
    python benchmarks/prepare.py --big-rows 0             # skip the big run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ALPACA = Path(__file__).resolve().parent.parent / "examples" / "data" / "alpaca_sample_data.jsonl"
MAX_LENGTH = 1024
SYSTEM = "You are a helpful assistant. Answer briefly and correctly."


def alpaca_rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in ALPACA.read_text().splitlines() if line.strip()]


def _turn(row: dict[str, str], number: int) -> tuple[str, str]:
    prompt = f"{row['instruction']} (#{number})"
    if row["input"]:
        prompt += f"\n\n{row['input']}"
    return prompt, row["output"]


def prompt_completion_rows(n: int) -> list[dict[str, Any]]:
    base = alpaca_rows()
    rows = []
    for number in range(n):
        prompt, answer = _turn(base[number % len(base)], number)
        rows.append({"prompt": prompt, "completion": " " + answer})
    return rows


def chat_rows(n: int, *, base: list[dict[str, str]] | None = None, first: int = 0) -> list[dict[str, Any]]:
    base = base or alpaca_rows()
    rows = []
    for number in range(first, first + n):
        messages: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
        for turn in range(2):
            prompt, answer = _turn(base[(2 * number + turn) % len(base)], number)
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        rows.append({"messages": messages})
    return rows


ROWS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "prompt_completion": prompt_completion_rows,
    "chat": chat_rows,
}


def tokenizer() -> Any:
    from trl_sft_kit.testing import tiny_tokenizer

    return tiny_tokenizer("qwen2_5")


def kit_stage(kind: str, rows: list[dict[str, Any]], num_proc: int | None) -> Callable[[], int]:
    """The kit's data stage for ``rows``; returns the number of tokens carrying loss."""
    from trl_sft_kit import SFTRecipe
    from trl_sft_kit.data.pipeline import prepare_training_data

    recipe = SFTRecipe().dataset(rows).training(max_length=MAX_LENGTH)
    if kind == "chat":
        recipe = recipe.loss("assistant_only")
    if num_proc is not None:
        recipe = recipe.training(dataset_num_proc=num_proc)
    tok = tokenizer()

    def run() -> int:
        return prepare_training_data(recipe, tok).tokenization.trained_tokens

    return run


def trl_stage(kind: str, rows: list[dict[str, Any]], num_proc: int | None) -> Callable[[], int]:
    """``SFTTrainer._prepare_dataset`` on a trainer built with TRL's defaults; returns the tokens trained."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trl_sft_kit.testing import tiny_model

    tok = tokenizer()
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-prepare-"),
        max_length=MAX_LENGTH,
        assistant_only_loss=kind == "chat",
        dataset_num_proc=num_proc,
        report_to="none",
        bf16=False,
        use_cpu=True,
    )
    trainer = SFTTrainer(
        model=tiny_model(tok), args=args, train_dataset=Dataset.from_list(rows[:2]), processing_class=tok
    )
    dataset = Dataset.from_list(rows)

    def run() -> int:
        import pyarrow.compute as pc

        prepared = trainer._prepare_dataset(dataset, tok, args, False, None, "train")
        labels = pc.list_flatten(prepared.data.table.column("labels"))
        return int(pc.sum(pc.not_equal(labels, -100)).as_py())

    return run


def timed(run: Callable[[], int]) -> tuple[float, int]:
    gc.collect()
    start = time.perf_counter()
    trained = run()
    return time.perf_counter() - start, trained


def compare(rows_n: int, cores: int, repeat: int = 3) -> None:
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    header = f"{'data':<18} {'runner':<5} {'num_proc':>8} {'seconds':>8} {'rows/s':>9} {'trained':>10}"
    print(header)
    print("-" * len(header))
    for kind, make in ROWS.items():
        rows = make(rows_n)
        for runner in (kit_stage, trl_stage):  # warm-up: imports and template compilation
            runner(kind, rows[:64], 1)()
        results: dict[tuple[str, int | None], float] = {}
        for label, runner in (("kit", kit_stage), ("trl", trl_stage)):
            for num_proc in (None, 1, 2):
                run = runner(kind, rows, num_proc)
                seconds, trained = min(timed(run) for _ in range(repeat))  # the least disturbed run
                results[label, num_proc] = seconds
                shown = f"default ({cores})" if label == "kit" and num_proc is None else str(num_proc)
                print(
                    f"{kind:<18} {label:<5} {shown:>8} {seconds:>8.2f} {rows_n / seconds:>9,.0f} "
                    f"{trained:>10,}",
                    flush=True,
                )
        print(
            f"  {kind}: kit default vs TRL default {results['trl', None] / results['kit', None]:.2f}x; "
            f"same dataset_num_proc: 1 -> {results['trl', 1] / results['kit', 1]:.2f}x, "
            f"2 -> {results['trl', 2] / results['kit', 2]:.2f}x; "
            f"kit 1 -> 2 workers {results['kit', 1] / results['kit', 2]:.2f}x, "
            f"TRL 1 -> 2 {results['trl', 1] / results['trl', 2]:.2f}x",
            flush=True,
        )


def write_chat_file(rows_n: int, path: Path) -> Path:
    """``rows_n`` chat rows written to a JSONL file one at a time (the big run reads its data from a file,
    as a user's would be, and the benchmark never holds the rows itself)."""
    base = alpaca_rows()
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, rows_n, 10_000):
            for row in chat_rows(min(10_000, rows_n - start), base=base, first=start):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def big(rows_n: int, num_proc: int | None) -> None:
    """The kit alone on ``rows_n`` chat rows read from a JSONL file (in a fresh process: the peak RSS is
    its own), with the cache off so that every run does the work."""
    from trl_sft_kit import SFTRecipe
    from trl_sft_kit.data.pipeline import prepare_training_data

    folder = Path(tempfile.mkdtemp(prefix="bench-prepare-big-"))
    data = write_chat_file(rows_n, folder / "chat.jsonl")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    recipe = SFTRecipe().dataset(str(data)).loss("assistant_only").training(max_length=MAX_LENGTH)
    recipe = recipe.cache(False)
    if num_proc is not None:
        recipe = recipe.training(dataset_num_proc=num_proc)
    tok = tokenizer()
    seconds, trained = timed(lambda: prepare_training_data(recipe, tok).tokenization.trained_tokens)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "rows": rows_n,
                "file_mib": round(data.stat().st_size / 2**20),
                "num_proc": num_proc,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows_n / seconds),
                "trained_tokens": trained,
                "peak_rss_mib": round(own / 1024),
                "rss_before_the_kit_mib": round(before / 1024),
                "peak_worker_rss_mib": round(worker / 1024),
            }
        )
    )
    data.unlink()
    folder.rmdir()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and the big run; print one row per runner, then the ratios."""
    from trl_sft_kit.data.parallel import available_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per kind for the comparison (20k)")
    parser.add_argument(
        "--big-rows", type=int, default=1_000_000, help="chat rows for the kit alone (0: skip)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each comparison cell; the fastest is shown (3)"
    )
    parser.add_argument("--big-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--num-proc", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.big_only:
        big(args.big_rows, args.num_proc)
        return 0
    cores = available_cores()
    if args.rows:
        compare(args.rows, cores, args.repeat)
    if args.big_rows:
        print(f"\nkit alone, {args.big_rows:,} chat rows (fresh process each):", flush=True)
        for num_proc in (1, None):
            command = [sys.executable, __file__, "--big-only", "--big-rows", str(args.big_rows)]
            if num_proc is not None:
                command += ["--num-proc", str(num_proc)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode:
                print(result.stderr[-2000:], file=sys.stderr)
                return result.returncode
            print("  " + result.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
