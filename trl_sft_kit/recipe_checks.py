"""What ``SFTRecipe.validate()`` checks: every conflict of the recipe with itself, its data's paths and its
output folder, found before anything heavy loads and raised together as one ``RecipeError``.

The full list is in ``docs/concepts.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from trl_sft_kit.errors import DataSourceError, RecipeError, SFTKitError, numbered
from trl_sft_kit.plan import CHEAP_BYTES
from trl_sft_kit.sft_fields import resolve_training_fields
from trl_sft_kit.specs import InlineRows

if TYPE_CHECKING:
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["check_recipe"]


def check_recipe(recipe: SFTRecipe, *, sources: bool = True) -> None:
    """Raise one ``RecipeError`` naming every problem of ``recipe`` (see ``SFTRecipe.validate``).

    Raises:
        RecipeError: with ``problems``, one sentence per conflict and the way out.
        DataSourceError: the only problems are dataset paths that cannot be found (``path`` names the first).
    """
    from trl_sft_kit.data.mixture import mixture_problems, source_name
    from trl_sft_kit.data.sftconfig import data_field_problems
    from trl_sft_kit.data.source_checks import source_problems
    from trl_sft_kit.packing import get_packer, packer_names
    from trl_sft_kit.training_ranges import training_range_problems

    problems: list[str] = []
    if recipe.dataset_spec is None:
        problems.append("no training data: add .dataset(path_or_rows).")
    if recipe.quantization_spec is not None and recipe.lora_spec is None:
        problems.append(
            f"quantize({recipe.quantization_spec.mode!r}) without lora(): quantized weights cannot be "
            "trained directly; add .lora() (QLoRA) or drop .quantize()."
        )
    packer = None
    if recipe.packing_spec is not None:
        if recipe.packing_spec.strategy not in packer_names():
            problems.append(
                f"unknown packing strategy {recipe.packing_spec.strategy!r}; choose one of "
                f"{', '.join(map(repr, packer_names()))}."
            )
        else:
            packer = get_packer(recipe.packing_spec.strategy)
    mode = recipe.loss_spec.mode
    if packer is not None and packer.crosses_boundaries and mode == "assistant_only":
        problems.append(
            f"loss 'assistant_only' with packing {packer.name!r}: that packer cuts sequences across "
            "conversation boundaries, so turns lose their roles; use packing('ffd') or packing('bfd')."
        )
    if packer is not None and recipe.training_fields.get("max_length", 1024) is None:
        problems.append("packing needs a row length: set .training(max_length=N) (None turns it off).")
    if recipe.neftune_spec is not None and not recipe.neftune_spec.alpha > 0:
        problems.append(f"NEFTune alpha must be > 0 (got {recipe.neftune_spec.alpha}).")
    plain_text = [spec for spec in recipe.dataset_specs if _plain_text(spec)]
    if plain_text:
        which = (
            "a plain-text dataset"
            if len(recipe.dataset_specs) == 1
            else (f"plain-text data ({', '.join(map(repr, map(source_name, plain_text)))})")
        )
        if mode == "completion_only":
            problems.append(
                f"loss 'completion_only' with {which}: text has no completion to single out; "
                "use loss('all') or give prompt/completion rows."
            )
        if mode == "assistant_only":
            problems.append(
                f"loss 'assistant_only' with {which}: text has no assistant turns; use "
                "loss('all') or give chat 'messages' rows."
            )
    missing = source_problems(recipe.dataset_specs) if sources else []
    problems.extend(problem for _, problem in missing)
    problems.extend(mixture_problems(recipe.dataset_specs))
    problems.extend(_scale_problems(recipe))
    problems.extend(
        data_field_problems(
            recipe.training_fields,
            packing=recipe.packing_spec is not None,
            streaming=any(spec.streaming for spec in recipe.dataset_specs),
        )
    )
    problems.extend(_output_problems(recipe))
    try:
        resolved = resolve_training_fields(dict(recipe.training_fields))
    except RecipeError as exc:
        problems.extend(exc.problems)
    else:
        problems.extend(training_range_problems(resolved))
    if problems:
        message = numbered("the recipe cannot work", problems)
        if len(missing) == len(problems):  # only data that cannot be found: the data source's error
            raise DataSourceError(message, path=missing[0][0])
        raise RecipeError(message, problems=tuple(problems))


def _plain_text(spec: DatasetSpec) -> bool:
    """Whether the data is plain text, when that can be told cheaply (no heavy import, small file)."""
    if spec.format != "auto":
        from trl_sft_kit.formats import get_format

        return get_format(spec.format).canonical == "text"
    source = spec.source
    if isinstance(source, str):
        path = Path(source).expanduser()
        if path.suffix.lower() == ".txt":
            return True
        if not (path.is_file() and path.suffix.lower() in (".jsonl", ".json")):
            return False
        if path.stat().st_size > CHEAP_BYTES:
            return False
    elif not isinstance(source, InlineRows):
        return False
    from trl_sft_kit.data.prepare import detect_spec_format, rename_columns
    from trl_sft_kit.data.sources import load_rows
    from trl_sft_kit.formats import FormatOptions

    try:
        raw = rename_columns(load_rows(spec), spec)
        detection = detect_spec_format(raw, spec, FormatOptions(text_field=spec.text_field))
    except SFTKitError:
        return False  # compile() reports data problems with their file and row
    return detection.canonical == "text"


def _scale_problems(recipe: SFTRecipe) -> list[str]:
    """Streaming, evaluation and multi-process settings that cannot work with the rest (for validate)."""
    problems: list[str] = []
    fields = recipe.training_fields
    streamed = [spec for spec in recipe.dataset_specs if spec.streaming]
    max_steps = fields.get("max_steps", -1)
    if streamed and not (isinstance(max_steps, int) and max_steps > 0):
        problems.append(
            "streaming=True needs a step count: a stream's length is not known in advance, so epochs "
            "cannot be counted; set .training(max_steps=N)."
        )
    has_eval = any(spec.eval is not None for spec in recipe.dataset_specs)
    strategy = str(fields.get("eval_strategy", "no"))
    if not has_eval and strategy != "no":
        problems.append(
            f"eval_strategy={strategy!r} but no evaluation data; add eval= to .dataset() (a fraction to "
            "hold out, a number of rows, or a separate set), or drop eval_strategy."
        )
    spec = recipe.distributed_spec
    if spec is not None:
        for name in ("fsdp", "fsdp_config", "deepspeed"):
            if fields.get(name) not in (None, "", False, {}):
                problems.append(
                    f".distributed({spec.kind!r}) and .training({name}=...) both set up the processes; "
                    f"keep one (distributed() writes {name} itself)."
                )
        if recipe.quantization_spec is not None and spec.kind != "ddp":
            problems.append(
                f"quantize({recipe.quantization_spec.mode!r}) with distributed({spec.kind!r}): sharding "
                "quantized weights needs a quantized storage type the kit does not set up; use "
                "distributed('ddp') or drop .quantize()."
            )
    return problems


def _output_problems(recipe: SFTRecipe) -> list[str]:
    """An output_dir that is or holds the model's folder, or holds or lies inside the data (for validate)."""
    from trl_sft_kit.compile import DEFAULT_OUTPUT_DIR, resolve_model
    from trl_sft_kit.runs import guarded_paths, placement_problem

    output_dir = recipe.training_fields.get("output_dir") or DEFAULT_OUTPUT_DIR
    if not isinstance(output_dir, (str, os.PathLike)):
        return []
    model, data = guarded_paths(resolve_model(recipe)[0], recipe.dataset_specs)
    problem = placement_problem(output_dir, model=model, data=data)
    if problem is None:
        return []
    return [
        f"output_dir {str(output_dir)!r} cannot hold the run: {problem}. Choose another output_dir, outside "
        "the model's and the data's folders."
    ]
