"""Train on a weighted mixture of two datasets and evaluate on a held-out share of each.

Run from the repository root:

```bash
python examples/mixture_eval.py          # the offline tiny model, a few steps
```

The mixture takes 70 % of its rows from the chat sample and 30 % from the instruction sample, each in its
own detected format, and holds out 10 % of each source for evaluation (before any row is repeated, so no
eval row leaks into training). Outputs go to ``--output-dir`` (default ``outputs/mixture_eval``, or
``$TRL_SFT_KIT_EXAMPLES_DIR/mixture_eval`` when that is set).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_sft_kit import SFTRecipe

HERE = Path(__file__).resolve().parent


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

    recipe: Any = (
        SFTRecipe()
        .model(base_model())
        .dataset(HERE / "data" / "chat_sample_data.jsonl", weight=0.7, eval=0.1)
        .mix(HERE / "data" / "instruction_sample_data.jsonl", weight=0.3, eval=0.1)
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
