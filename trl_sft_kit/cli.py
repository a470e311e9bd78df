"""The ``trl-sft-kit`` command (also ``python -m trl_sft_kit``).

``demo`` fine-tunes an offline tiny model on the sample chat data with LoRA and prints the loss as it
falls; ``train RECIPE.yaml`` trains any recipe file, including a flat legacy stage config, with
``--set key=value`` overrides; ``generate OUTPUT_DIR`` prints what a trained model answers. Errors of the
kit are printed as one clear message with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trl_sft_kit.errors import SFTKitError

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_ERROR = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trl-sft-kit", description="Supervised fine-tuning on top of TRL, from a recipe."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="LoRA fine-tune of an offline tiny model on the sample chat data (about a minute on a CPU)",
        description="Fine-tune a tiny model offline with LoRA on examples/data/chat_sample_data.jsonl, "
        "printing "
        "the loss as it falls and where the adapter was saved. Set TRL_SFT_KIT_MODEL to use another model.",
    )
    demo.add_argument(
        "--output-dir", default="outputs/demo", help="where to write the adapter (default: %(default)s)"
    )
    demo.add_argument("--data", default=None, help="a dataset file to use instead of the bundled sample")
    demo.add_argument("--epochs", type=float, default=8.0, help="training epochs (default: %(default)s)")

    train = commands.add_parser(
        "train",
        help="train the recipe in a YAML file (the kit's layout or a flat SFT-stage config)",
        description="Train a recipe from YAML. Flat stage configs (dataset_name_or_path, lora_r, ...) and "
        "stage_configs: {trl_sft: {...}} are accepted.",
    )
    train.add_argument("recipe", help="path to the recipe YAML")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a top-level or training key, e.g. --set num_train_epochs=1 (repeatable)",
    )

    generate = commands.add_parser(
        "generate",
        help="print a trained model's answers to prompts (a quick look after training)",
        description="Load the model a training run saved in OUTPUT_DIR (an adapter on its base model, or a "
        "full or merged model) and print its answer to each prompt. With a chat template, each prompt is "
        "sent as a user message (unless --raw); prompts can also come one per line on stdin.",
    )
    generate.add_argument("output_dir", metavar="OUTPUT_DIR", help="the output_dir of a training run")
    generate.add_argument(
        "--prompt",
        dest="prompts",
        action="append",
        default=[],
        metavar="TEXT",
        help="a prompt (repeatable); without one, prompts are read one per line from stdin",
    )
    generate.add_argument(
        "--max-new-tokens", type=int, default=64, help="the most tokens to add (default: %(default)s)"
    )
    generate.add_argument(
        "--raw", action="store_true", help="continue prompts as plain text, without the chat template"
    )
    generate.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "generate":
            return _generate(args)
        return _train(args)
    except SFTKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _demo_data(explicit: str | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "examples" / "data" / "chat_sample_data.jsonl"
        if candidate.is_file():
            return candidate
    from trl_sft_kit.testing import write_sample_dataset

    return write_sample_dataset(Path("outputs") / "demo-data" / "chat_sample_data.jsonl", "messages", 64)


def _demo(args: argparse.Namespace) -> int:
    from trl_sft_kit.recipe import SFTRecipe

    started = time.perf_counter()
    model = os.environ.get("TRL_SFT_KIT_MODEL", "").strip()
    if not model:
        from trl_sft_kit.testing import cached_tiny_model_dir

        print("building (or reusing) the offline tiny model ...", flush=True)
        model = str(cached_tiny_model_dir("qwen2_5"))
    data = _demo_data(args.data)
    recipe = (
        SFTRecipe()
        .model(model)
        .dataset(data)
        .lora(r=16, alpha=32, dropout=0.0)
        .training(
            output_dir=args.output_dir,
            num_train_epochs=args.epochs,
            learning_rate=1e-2,
            per_device_train_batch_size=8,
            max_length=256,
            logging_steps=8,
            save_strategy="no",
            activation_checkpointing=False,
            disable_tqdm=True,
            seed=0,
        )
    )
    print(f"model: {model}\ndata:  {data}", flush=True)
    compiled = recipe.compile()
    print(compiled.report.summary(), flush=True)
    result = compiled.train()
    print("\nloss by logging step:")
    for step, loss in enumerate(result.losses, 1):
        print(f"  {step * 8:4d}  {loss:.4f}")
    if len(result.losses) >= 2:
        first, last = result.losses[0], result.losses[-1]
        print(f"loss fell from {first:.4f} to {last:.4f} ({(first - last) / first:.1%})")
    where = result.adapter_path or result.model_path
    print(f"adapter saved to {where}  ({time.perf_counter() - started:.0f} s in all)")
    return 0


def _parse_override(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SFTKitError(f"--set takes KEY=VALUE (got {text!r}).")
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def _train(args: argparse.Namespace) -> int:
    from trl_sft_kit.config import load_yaml, recipe_from_dict

    data = load_yaml(Path(args.recipe))
    overrides = dict(_parse_override(item) for item in args.overrides)
    if overrides:
        stage = (
            data.get("stage_configs", {}).get("trl_sft")
            if isinstance(data.get("stage_configs"), dict)
            else None
        )
        target = stage if isinstance(stage, dict) else data
        sections = (
            "model",
            "dataset",
            "lora",
            "quantization",
            "packing",
            "neftune",
            "liger",
            "loss",
            "tokens",
        )
        for key, value in overrides.items():
            if "training" in target and key not in sections and "." not in key:
                target["training"][key] = value
            else:
                target[key] = value
    recipe = recipe_from_dict(data)
    result = recipe.train()
    final = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    print(f"trained {result.global_step} steps; final loss {final}")
    print(f"saved to {result.adapter_path or result.model_path}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from trl_sft_kit.export import has_chat_template
    from trl_sft_kit.result import load_result

    result = load_result(args.output_dir)  # refuses a folder that is not a run's before anything loads
    prompts = list(args.prompts)
    if not prompts and not sys.stdin.isatty():
        prompts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not prompts:
        print(
            "error: give a prompt with --prompt TEXT (repeatable), or one per line on stdin.", file=sys.stderr
        )
        return EXIT_USAGE
    chat = not args.raw and has_chat_template(result.output_dir)
    inputs: list[Any] = [[{"role": "user", "content": text}] if chat else text for text in prompts]
    answers = result.generate(inputs, max_new_tokens=args.max_new_tokens, do_sample=args.sample)
    for prompt, answer in zip(prompts, answers, strict=True):
        print(f">>> {prompt}\n{answer.strip() or '(an empty answer)'}\n", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
