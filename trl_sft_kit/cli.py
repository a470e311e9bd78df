"""The ``trl-sft-kit`` command (also ``python -m trl_sft_kit``).

``inspect DATA`` shows what training will see (format, rows with the tokens that carry loss, lengths,
truncation, packing) loading only the tokenizer; ``train RECIPE.yaml`` trains any recipe file, including a
flat legacy stage config, with ``--set key=value`` overrides, and ends with a summary; ``demo`` fine-tunes an
offline tiny model; ``generate OUTPUT_DIR`` prints what a trained model answers.

Errors of the kit are printed as one clear message on stderr with exit code 1, usage errors with exit code
2, never as a traceback (``--debug`` shows one for an unexpected failure).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trl_sft_kit.cli_errors import UsageError, command_line_advice
from trl_sft_kit.cli_overrides import _parse_override, apply_overrides
from trl_sft_kit.errors import SFTKitError

__all__ = ["UsageError", "apply_overrides", "main"]

EXIT_USAGE = 2
EXIT_ERROR = 1


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})") from None
        if value < minimum:
            least = "at least 1" if minimum == 1 else f"{minimum} or more"
            raise argparse.ArgumentTypeError(f"must be {least} (got {value})")
        return value

    return parse


_positive_int = _whole_number(1)
_count = _whole_number(0)


def _parser() -> argparse.ArgumentParser:
    from trl_sft_kit.specs import LOSS_MODES

    parser = argparse.ArgumentParser(
        prog="trl-sft-kit", description="Supervised fine-tuning on top of TRL, from a recipe."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected failure instead of one line"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the libraries' own messages (deprecations, kernels, loading bars) on the console too; "
        "otherwise they go to trl_sft_kit.log in the output folder (also: TRL_SFT_KIT_VERBOSE=1)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inspect_ = commands.add_parser(
        "inspect",
        help="show what training will see: format, rows with their loss tokens, lengths, packing",
        description="Prepare the data as training would and report it: the detected format and why, the "
        "first rows as the chat template renders them with the tokens that carry loss marked, token "
        "lengths, what --max-length cuts, the fill of packed rows per packing strategy, and skipped rows. "
        "Loads only the tokenizer, never the model.",
    )
    inspect_.add_argument(
        "data",
        metavar="DATA",
        help="a data file or folder (.jsonl, .json, .csv, .parquet, .txt), a hub dataset id, or a recipe "
        ".yaml (the options below then change the recipe)",
    )
    inspect_.add_argument(
        "--model",
        metavar="M",
        default=None,
        help="the model (folder or hub id) whose tokenizer to use (default: $TRL_SFT_KIT_MODEL, else the "
        "kit's default model)",
    )
    inspect_.add_argument(
        "--format", metavar="F", default=None, help="the dataset format (default: detect it)"
    )
    inspect_.add_argument(
        "--on-bad-rows",
        choices=("error", "skip"),
        default=None,
        help="stop at the first bad row, or skip, count and report bad rows (default: error)",
    )
    inspect_.add_argument(
        "--chat-template",
        metavar="T",
        default=None,
        help="a chat template bundled with TRL (qwen2_5, llama3_2, ...), a .jinja file or a tokenizer",
    )
    inspect_.add_argument(
        "--max-length",
        metavar="N",
        type=_positive_int,
        default=None,
        help="the longest row in tokens (default: the recipe's, else 1024)",
    )
    inspect_.add_argument(
        "--loss", choices=LOSS_MODES, default=None, help="which tokens carry loss (default: auto)"
    )
    inspect_.add_argument(
        "--rows", metavar="N", type=_count, default=5, help="how many rows to show (default: %(default)s)"
    )
    inspect_.add_argument(
        "--json", action="store_true", help="print the report as JSON on stdout, and nothing else there"
    )

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
        help="override a setting, e.g. --set max_steps=10, --set lora.r=8, --set lora_r=8 in a flat "
        "config (repeatable; values are read as YAML)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in the output folder (same data order)",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="delete what an earlier run left in the output folder and start again",
    )
    train.add_argument(
        "--launch",
        action="store_true",
        help="start the recipe's processes: accelerate launch with a matching config (torchrun without GPUs)",
    )
    train.add_argument(
        "--num-processes", type=int, default=None, help="processes on this machine (with --launch)"
    )
    train.add_argument("--num-machines", type=int, default=None, help="machines taking part (with --launch)")
    train.add_argument("--machine-rank", type=int, default=0, help="this machine's rank, 0 on the main one")
    train.add_argument(
        "--main-process-ip", default=None, help="the main machine's address (several machines)"
    )
    train.add_argument("--main-process-port", type=int, default=None, help="the main machine's port")
    train.add_argument("--dry-run", action="store_true", help="with --launch: print the command only")

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
    for sub in commands.choices.values():  # --verbose after the command works too
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    commands = {"inspect": _inspect, "train": _train, "demo": _demo, "generate": _generate}
    from trl_sft_kit.console import quiet_console

    try:
        with quiet_console(verbose=args.verbose, prefix=args.command) as console:
            args.console = console
            return commands[args.command](args)
    except UsageError as exc:
        _report(args, exc, str(exc))
        print(f"trl-sft-kit {args.command}: error: {exc}", file=sys.stderr)
        print(f"(see trl-sft-kit {args.command} --help)", file=sys.stderr)
        return EXIT_USAGE
    except SFTKitError as exc:
        message = command_line_advice(str(exc))
        _report(args, exc, message)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:  # train() says where it saved a checkpoint to resume from
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        _silence_stdout()
        return EXIT_ERROR
    except OSError as exc:  # a file that cannot be read or written, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"error: {type(exc).__name__}: {exc}\n(unexpected: rerun with trl-sft-kit --debug "
            f"{args.command} ... to see the traceback, and report it if it is a bug)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _report(args: argparse.Namespace, exc: BaseException, message: str) -> None:
    """With ``--json``, the failure as a JSON object on stdout (the line on stderr stays for people)."""
    if getattr(args, "json", False):
        from trl_sft_kit.cli_errors import error_json

        sys.stdout.write(error_json(exc, message) + "\n")
        sys.stdout.flush()


def _with_format(recipe: Any, format: str, path: str) -> Any:
    """The recipe of a file with its one dataset read as ``format``."""
    import attrs

    from trl_sft_kit.errors import RecipeError
    from trl_sft_kit.formats import format_names

    specs = recipe.dataset_specs
    if len(specs) != 1:
        raise UsageError(
            f"--format applies to one dataset, but {path} has {len(specs) or 'no'} sources; set each "
            "source's format in the file instead."
        )
    if format != "auto" and format not in format_names():
        raise RecipeError(
            f"unknown dataset format {format!r}; choose 'auto' or one of "
            f"{', '.join(map(repr, format_names()))}."
        )
    return attrs.evolve(recipe, dataset_spec=attrs.evolve(specs[0], format=format))


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _inspect(args: argparse.Namespace) -> int:
    from trl_sft_kit.recipe import SFTRecipe

    data = str(args.data)
    if data.lower().endswith((".yaml", ".yml")):
        recipe = SFTRecipe.from_yaml(Path(data))
        if args.format is not None:
            recipe = _with_format(recipe, args.format, data)
        if args.on_bad_rows is not None and recipe.dataset_specs:
            import attrs

            specs = [attrs.evolve(spec, on_bad_rows=args.on_bad_rows) for spec in recipe.dataset_specs]
            recipe = attrs.evolve(recipe, dataset_spec=specs[0], more_datasets=tuple(specs[1:]))
    else:
        recipe = SFTRecipe().dataset(
            data, format=args.format or "auto", on_bad_rows=args.on_bad_rows or "error"
        )
    if args.model is not None:
        recipe = recipe.model(args.model)
    if args.chat_template is not None:
        recipe = recipe.chat_template(args.chat_template)
    if args.max_length is not None:
        recipe = recipe.training(max_length=args.max_length)
    if args.loss is not None:
        recipe = recipe.loss(args.loss)
    report = recipe.inspect(rows=args.rows)
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        report.print()
    sys.stdout.flush()
    return 0


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
            seed=0,
        )
    )
    print(f"model: {model}", flush=True)
    args.console.output_dir = Path(args.output_dir)
    compiled = recipe.compile()
    result = compiled.train(overwrite=True)  # a demo run replaces the last demo run; it logs the summary
    print("\nloss by logging step:")
    for step, loss in enumerate(result.losses, 1):
        print(f"  {step * 8:4d}  {loss:.4f}")
    if len(result.losses) >= 2:
        first, last = result.losses[0], result.losses[-1]
        print(f"loss fell from {first:.4f} to {last:.4f} ({(first - last) / first:.1%})")
    where = result.adapter_path or result.model_path
    print(f"adapter saved to {where}  ({time.perf_counter() - started:.0f} s in all)")
    _print_run_files(result)
    return 0


def _train(args: argparse.Namespace) -> int:
    from trl_sft_kit.compile import DEFAULT_OUTPUT_DIR
    from trl_sft_kit.config import recipe_from_dict
    from trl_sft_kit.config_paths import read_recipe_file

    if args.resume and args.overwrite:
        raise UsageError(
            "--resume continues the run in the output folder and --overwrite deletes it; choose one."
        )
    if args.launch:
        from trl_sft_kit.distributed import launch

        extra = (["--resume"] if args.resume else []) + (["--overwrite"] if args.overwrite else [])
        return launch(
            args.recipe,
            args.overrides,
            num_processes=args.num_processes,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            main_process_ip=args.main_process_ip,
            main_process_port=args.main_process_port,
            train_args=extra,
            dry_run=args.dry_run,
        )
    overrides = [_parse_override(item) for item in args.overrides]
    data = read_recipe_file(args.recipe)
    recipe = recipe_from_dict(apply_overrides(data, overrides) if overrides else data)
    options = {name: True for name in ("resume", "overwrite") if getattr(args, name)}
    args.console.output_dir = Path(str(recipe.training_fields.get("output_dir") or DEFAULT_OUTPUT_DIR))
    started = time.perf_counter()
    result = recipe.train(**options)
    _print_summary(result, time.perf_counter() - started)
    return 0


def _print_summary(result: Any, seconds: float) -> None:
    """The end of a training run: steps, the loss from first to last, final metrics, and the files."""
    losses = list(result.losses)
    final = f"{losses[-1]:.4f}" if losses else "n/a"
    print(f"trained {result.global_step} steps; final loss {final}")
    if getattr(result, "resumed_from", None) is not None:
        print(f"resumed from {result.resumed_from}")
    for sentence in getattr(result, "passed_over", ()):
        print(f"passed over: {sentence}")
    if len(losses) >= 2:
        print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} logged steps ({seconds:.0f} s)")
    metrics = ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in sorted(result.metrics.items())
    )
    if metrics:
        print(f"metrics: {metrics}")
    kind = "LoRA adapter" if result.adapter_path is not None else "model"
    print(f"saved to {result.adapter_path or result.model_path} ({kind})")
    _print_run_files(result)


def _print_run_files(result: Any) -> None:
    """Where the run's recipe and loss plot are, when they were written."""
    from trl_sft_kit.card import RECIPE_FILE
    from trl_sft_kit.plots import LOSS_PLOT_FILE

    for label, name in (("recipe", RECIPE_FILE), ("loss plot", LOSS_PLOT_FILE)):
        path = Path(result.output_dir) / name
        if path.is_file():
            print(f"{label}: {path}")


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
