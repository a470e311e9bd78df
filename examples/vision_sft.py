"""Fine-tune a vision-language model on images in conversations: LoRA on the language model, answers only.

Run from the repository root::

    python examples/vision_sft.py                                     # the offline tiny VLM, a few steps
    TRL_SFT_KIT_MODEL=HuggingFaceTB/SmolVLM-256M-Instruct python examples/vision_sft.py --max-steps 200

The data is written in LLaMA-Factory's ``mllm_demo.json`` layout (``<image>`` markers in the user turns and
an ``images`` list of paths relative to the data file), with generated pictures of coloured squares; give
your own with ``--data``. The adapter, the processor, a model card, ``recipe.yaml`` and ``run.json`` go to
``--output-dir`` (default ``outputs/vision_sft``, or ``$TRL_SFT_KIT_EXAMPLES_DIR/vision_sft`` when set).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from trl_sft_kit import SFTRecipe, TrainResult


def base_model(cache: Path) -> str:
    """``$TRL_SFT_KIT_MODEL``, else the offline tiny LLaVA (built once into ``cache``)."""
    name = os.environ.get("TRL_SFT_KIT_MODEL", "").strip()
    if name:
        return name
    from trl_sft_kit.testing.vision import save_tiny_vision_model

    folder = cache / "tiny-vlm"
    if not (folder / "config.json").is_file():
        save_tiny_vision_model(folder)
    return str(folder)


def default_output_dir(name: str) -> Path:
    """``$TRL_SFT_KIT_EXAMPLES_DIR/<name>`` when that is set, else ``outputs/<name>``."""
    root = os.environ.get("TRL_SFT_KIT_EXAMPLES_DIR", "").strip()
    return Path(root) / name if root else Path("outputs") / name


def main(argv: Sequence[str] | None = None) -> TrainResult:
    parser = argparse.ArgumentParser(description="LoRA fine-tune of a vision-language model on image chats.")
    parser.add_argument("--data", type=Path, default=None, help="an mllm_demo.json-style file")
    parser.add_argument("--output-dir", type=Path, default=default_output_dir("vision_sft"))
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    args = parser.parse_args(argv)
    work = args.output_dir.parent / "vision_sft_inputs"
    data = args.data
    if data is None:
        from trl_sft_kit.testing.vision import write_vision_dataset

        data = write_vision_dataset(work / "data", 16)

    recipe = (
        SFTRecipe()
        .model(base_model(work))
        .dataset(data)  # <image> markers + images: kept for a vision-language model, refused for a text one
        .lora(
            r=8, alpha=16
        )  # "all-linear" means the language model's projections: the vision tower is frozen
        .loss("assistant_only")  # the answers; never the question, never the image tokens
        .training(
            output_dir=str(args.output_dir),
            max_steps=args.max_steps,
            learning_rate=args.lr,
            per_device_train_batch_size=4,
            logging_steps=1,
            save_strategy="no",
            seed=0,
        )
    )
    compiled = recipe.compile()
    print(compiled.summary(), end="\n\n")
    result = compiled.train()
    print("losses:", ", ".join(f"{loss:.4f}" for loss in result.losses))
    print(f"adapter saved to {result.adapter_path}")
    return result


if __name__ == "__main__":
    main()
