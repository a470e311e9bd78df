"""Fine-tune on chat data: a LoRA adapter, loss on the assistant replies only, packed rows.

Run from the repository root::

    python examples/chat_sft.py                                   # the offline tiny model, a few steps
    TRL_SFT_KIT_MODEL=Qwen/Qwen2.5-0.5B-Instruct python examples/chat_sft.py --max-steps 200

The data is ``examples/data/chat_sample_data.jsonl`` (OpenAI ``messages`` rows). Any chat file works with
``--data``, ShareGPT too (``examples/data/sharegpt_sample_data.jsonl``): the format is detected. The
adapter, the tokenizer, a model card, ``recipe.yaml`` and ``run.json`` go to ``--output-dir`` (default
``outputs/chat_sft``, or ``$TRL_SFT_KIT_EXAMPLES_DIR/chat_sft`` when that is set).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from trl_sft_kit import SFTRecipe, TrainResult

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


def main(argv: Sequence[str] | None = None) -> TrainResult:
    parser = argparse.ArgumentParser(description="LoRA fine-tune on chat data, assistant replies only.")
    parser.add_argument("--data", type=Path, default=HERE / "data" / "chat_sample_data.jsonl")
    parser.add_argument("--output-dir", type=Path, default=default_output_dir("chat_sft"))
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    args = parser.parse_args(argv)

    recipe = (
        SFTRecipe()
        .model(base_model())
        .dataset(args.data)
        .lora(r=16, alpha=32, dropout=0.05)
        .loss("assistant_only")  # the replies and their end-of-turn token; never the user's words
        .packing("ffd")  # several conversations a row; attention never crosses from one to the next
        .training(
            output_dir=str(args.output_dir),
            max_steps=args.max_steps,
            learning_rate=args.lr,
            max_length=256,
            per_device_train_batch_size=4,
            logging_steps=1,
            save_strategy="no",
            seed=0,
        )
    )
    recipe.validate()
    print(recipe.explain(), end="\n\n")

    compiled = recipe.compile()
    print(compiled.summary(), end="\n\n")
    result = compiled.train()

    print("losses:", ", ".join(f"{loss:.4f}" for loss in result.losses))
    print(f"adapter saved to {result.adapter_path}")
    question = [{"role": "user", "content": "What colour is the sky?"}]
    (answer,) = result.generate([question], max_new_tokens=16)
    print(f"the model now answers {answer!r}")
    return result


if __name__ == "__main__":
    main()
