"""Fine-tune on instruction data: the answers carry the loss, NEFTune noise, bad rows skipped and counted.

Run from the repository root::

    python examples/instruction_sft.py                            # the offline tiny model, a few steps
    python examples/instruction_sft.py --data examples/data/alpaca_sample_data.jsonl
    TRL_SFT_KIT_MODEL=Qwen/Qwen2.5-0.5B-Instruct python examples/instruction_sft.py --max-steps 200

Rows such as ``{"instruction": ..., "response": ...}`` (or ``question``/``answer``, Alpaca's
``instruction``/``input``/``output``, ...) are detected and become prompt-completion rows; with a chat
template they are conversational, so the model's own template formats them. Fields under other names are
renamed with ``--rename old=new``. Outputs go to ``--output-dir`` (default ``outputs/instruction_sft``, or
``$TRL_SFT_KIT_EXAMPLES_DIR/instruction_sft`` when that is set).
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
    parser = argparse.ArgumentParser(description="LoRA fine-tune on instruction data, answers only.")
    parser.add_argument("--data", type=Path, default=HERE / "data" / "instruction_sample_data.jsonl")
    parser.add_argument("--output-dir", type=Path, default=default_output_dir("instruction_sft"))
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename a field, e.g. query=instruction",
    )
    args = parser.parse_args(argv)
    columns = dict(item.split("=", 1) for item in args.rename) or None

    recipe = (
        SFTRecipe()
        .model(base_model())
        .dataset(args.data, columns=columns, on_bad_rows="skip")  # skip bad rows, but list each one
        .lora(r=8, alpha=16)
        .loss("completion_only")  # the answer (and its end of turn); "auto" means the same for this data
        .neftune(5.0)  # noise on the input embeddings while training
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
    compiled = recipe.validate().compile()
    report = compiled.report
    print(report.summary(), end="\n\n")
    print(f"format {report.format!r} became {report.canonical!r} rows; {len(report.skipped)} rows skipped")

    result = compiled.train()
    print("losses:", ", ".join(f"{loss:.4f}" for loss in result.losses))
    print(f"adapter saved to {result.adapter_path}")
    return result


if __name__ == "__main__":
    main()
