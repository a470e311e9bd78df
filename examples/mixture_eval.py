"""PENDING (issue 7, mixtures and eval splits): train on a weighted mixture of two datasets, evaluate on a
held-out split.

The kit cannot do this yet: ``SFTRecipe`` has no way to mix sources or to hold out evaluation data. This
script is written against the API planned for that work and refuses to run until it exists; its test in
``tests/test_examples.py`` is skipped until then. Whoever implements issue 7 makes the recipe below match
the API that lands, and removes the skip.

Run from the repository root, once issue 7 has landed::

    python examples/mixture_eval.py                               # the offline tiny model, a few steps

The mixture takes 70 % of its rows from the chat sample and 30 % from the instruction sample, and holds out
10 % of it for evaluation. Outputs go to ``--output-dir`` (default ``outputs/mixture_eval``, or
``$TRL_SFT_KIT_EXAMPLES_DIR/mixture_eval`` when that is set).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_sft_kit import SFTRecipe

HERE = Path(__file__).resolve().parent
PENDING_METHODS = ("mixture", "eval_split")


def base_model() -> str:
    """``$TRL_SFT_KIT_MODEL``, else the offline tiny model (built on first use, then cached)."""
    name = os.environ.get("TRL_SFT_KIT_MODEL", "").strip()
    if name:
        return name
    from trl_sft_kit.testing import cached_tiny_model_dir

    return str(cached_tiny_model_dir("qwen2_5"))


def default_output_dir(name: str) -> Path:
    """``$TRL_SFT_KIT_EXAMPLES_DIR/<name>`` when that is set, else ``outputs/<name>``."""
    root = os.environ.get("TRL_SFT_KIT_EXAMPLES_DIR", "").strip()
    return Path(root) / name if root else Path("outputs") / name


def main(argv: Sequence[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description="Train on a weighted mixture, evaluate on a held-out split.")
    parser.add_argument("--output-dir", type=Path, default=default_output_dir("mixture_eval"))
    parser.add_argument("--max-steps", type=int, default=3)
    args = parser.parse_args(argv)

    missing = [name for name in PENDING_METHODS if not hasattr(SFTRecipe, name)]
    if missing:
        needed = ", ".join(f"SFTRecipe.{name}()" for name in missing)
        sys.exit(
            f"examples/mixture_eval.py needs {needed}, which issue 7 (mixtures and eval splits) adds; this "
            "version of trl_sft_kit does not have it yet."
        )

    recipe: Any = (
        SFTRecipe()
        .model(base_model())
        .mixture(  # planned API: sources and their share of the training rows
            {
                HERE / "data" / "chat_sample_data.jsonl": 0.7,
                HERE / "data" / "instruction_sample_data.jsonl": 0.3,
            }
        )
        .eval_split(0.1)  # planned API: hold out 10 % of the mixture for evaluation
        .lora(r=8)
        .training(
            output_dir=str(args.output_dir),
            max_steps=args.max_steps,
            max_length=256,
            per_device_train_batch_size=4,
            eval_strategy="steps",
            eval_steps=args.max_steps,
            logging_steps=1,
            save_strategy="no",
            seed=0,
        )
    )
    compiled = recipe.validate().compile()
    print(compiled.summary(), end="\n\n")
    result = compiled.train()
    print("losses:", ", ".join(f"{loss:.4f}" for loss in result.losses))
    print("eval loss:", result.metrics.get("eval_loss"))
    return result


if __name__ == "__main__":
    main()
