"""QLoRA: a LoRA adapter trained on a base model loaded in 4 bits, then merged into a plain model.

Run from the repository root (needs bitsandbytes: ``pip install 'trl-sft-kit[quantization]'``)::

    python examples/qlora.py                                      # the offline tiny model, a few steps
    TRL_SFT_KIT_MODEL=Qwen/Qwen2.5-7B-Instruct python examples/qlora.py --max-steps 200   # on a GPU

The base model is loaded through bitsandbytes (NF4, double quantization); only the adapter trains. After
training, the adapter is merged into the base model loaded again in full precision (never in 4 bits), so
the merged model in ``<output-dir>/merged`` loads with plain transformers, without peft or bitsandbytes.
Outputs go to ``--output-dir`` (default ``outputs/qlora``, or ``$TRL_SFT_KIT_EXAMPLES_DIR/qlora`` when that
is set).
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
    parser = argparse.ArgumentParser(description="QLoRA fine-tune on chat data, then merge the adapter.")
    parser.add_argument("--data", type=Path, default=HERE / "data" / "chat_sample_data.jsonl")
    parser.add_argument("--output-dir", type=Path, default=default_output_dir("qlora"))
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--no-merge", action="store_true", help="keep the adapter only")
    args = parser.parse_args(argv)

    recipe = (
        SFTRecipe()
        .model(base_model())
        .dataset(args.data)
        .lora(r=16, alpha=32, dropout=0.05)
        .quantize("4bit", quant_type="nf4", double_quant=True)  # QLoRA; compute dtype follows the hardware
        .loss("assistant_only")
        .training(
            output_dir=str(args.output_dir / "adapter"),
            max_steps=args.max_steps,
            learning_rate=args.lr,
            max_length=256,
            per_device_train_batch_size=4,
            logging_steps=1,
            save_strategy="no",
            seed=0,
        )
    )
    print(recipe.validate().explain(), end="\n\n")  # the plan shows the quantization and the LoRA settings

    compiled = recipe.compile()
    base = compiled.trainer.model.get_base_model()
    print(f"base model loaded in 4 bits: {getattr(base, 'is_loaded_in_4bit', False)}")
    result = compiled.train()
    print("losses:", ", ".join(f"{loss:.4f}" for loss in result.losses))
    print(f"adapter saved to {result.adapter_path}")

    if not args.no_merge:
        merged = result.merge(args.output_dir / "merged", dtype="float32")
        print(f"merged model saved to {merged} (loads with AutoModelForCausalLM.from_pretrained)")
    return result


if __name__ == "__main__":
    main()
