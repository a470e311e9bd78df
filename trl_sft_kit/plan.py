"""What ``SFTRecipe.explain()`` says about the data: each source's format and why, and the loss in words.

Told cheaply: a file is read only when it is small (``CHEAP_BYTES``), rows given in memory are looked at,
and nothing is tokenized; a hub id or a large file says that its format is detected when the data is
prepared. ``explain(deep=True)`` adds what ``inspect()`` measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trl_sft_kit.errors import SFTKitError
from trl_sft_kit.specs import InlineRows, TokensSpec

if TYPE_CHECKING:
    from trl_sft_kit.formats.detect import Detection
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.specs import DatasetSpec, LossSpec

__all__ = ["CHEAP_BYTES", "KIT_FIELDS", "explain_recipe", "source_plan"]

CHEAP_BYTES = 64 * 1024 * 1024
"""Files up to this size are read to detect their format for ``explain()``."""

KIT_FIELDS = ("dataset_kwargs", "dataset_text_field", "report_to")
"""SFTConfig fields the kit sets for its own preparation of the data; ``explain()`` leaves them out."""


def source_plan(spec: DatasetSpec, recipe: SFTRecipe) -> list[str]:
    """Lines for one source: what it is, its detected format and why, and what its loss is computed on."""
    from trl_sft_kit.data.mixture import source_name

    options = repr(spec).removeprefix("DatasetSpec(").removesuffix(")").split(", ", 1)[1:]
    lines = [f"  {source_name(spec)}" + (f" ({options[0]})" if options else "")]
    detection = _detect(spec)
    if detection is None:
        lines.append("    format: detected when the data is prepared (a hub id, a folder or a large file)")
        return lines
    if isinstance(detection, str):
        lines.append(f"    format: cannot be told yet: {detection}")
        return lines
    lines.append(f"    {detection.describe()}")
    from trl_sft_kit.data.tokenize import effective_loss

    try:
        loss = effective_loss(recipe.loss_spec.mode, detection.canonical)
    except SFTKitError as exc:
        lines.append(f"    loss: cannot apply: {exc}")
        return lines
    from trl_sft_kit.data.loss_words import loss_words

    chosen = recipe.loss_spec
    lines.append(f"    loss on: {loss_words(loss, chosen.roles, chosen.turns)} (loss {chosen.mode!r})")
    return lines


def _detect(spec: DatasetSpec) -> Detection | str | None:
    """The source's ``Detection``, an error's text, or None when telling would cost a full read."""
    source = spec.source
    if isinstance(source, str):
        path = Path(source).expanduser()
        if not path.is_file() or path.stat().st_size > CHEAP_BYTES:
            return None
    elif not isinstance(source, InlineRows):
        return None
    from trl_sft_kit.data.prepare import detect_spec_format, rename_columns
    from trl_sft_kit.data.sources import load_rows
    from trl_sft_kit.formats import FormatOptions

    try:
        raw = rename_columns(load_rows(spec), spec)
        return detect_spec_format(raw, spec, FormatOptions(text_field=spec.text_field))
    except SFTKitError as exc:
        return str(exc)


def explain_recipe(recipe: SFTRecipe, *, deep: bool = False) -> str:
    """``SFTRecipe.explain()``'s text: model, each source's plan, lengths, loss, adapters, SFTConfig."""
    from trl_sft_kit.compile import config_kwargs, fallback_model_note, resolve_model

    model, origin = resolve_model(recipe)
    init = "".join(f", {key}={value!r}" for key, value in model.init_kwargs.items())
    lines = [f"model: {model.name} (from {origin}{init and f'; from_pretrained(...{init})'})"]
    if recipe.model_spec is None:
        lines.append(f"  {fallback_model_note(model, origin)}")
    from trl_sft_kit.vision.detect import explain_vision

    lines += explain_vision(model)
    if recipe.dataset_spec is not None:
        many = (
            f"a mixture of {len(recipe.dataset_specs)} sources, each in its own format"
            if recipe.more_datasets
            else "one source"
        )
        lines.append(f"data: {many}")
        for source in recipe.dataset_specs:
            lines += source_plan(source, recipe)
    else:
        lines.append("data: none yet (add .dataset(...))")
    max_length = recipe.training_fields.get("max_length", 1024)
    lines.append(f"lengths: rows of at most {max_length} tokens" if max_length else "lengths: no limit")
    if any(spec.eval is not None for spec in recipe.dataset_specs):
        schedule = recipe.training_fields.get("eval_strategy", "epoch (the kit's default with eval data)")
        lines.append(f"evaluation: on held-out or separate rows, eval_strategy={schedule}")
    if any(spec.streaming for spec in recipe.dataset_specs):
        lines.append("streaming: read while training (IterableDataset); packed a buffer at a time")
    if recipe.distributed_spec is not None:
        spec = recipe.distributed_spec
        each = spec.num_processes if spec.num_processes is not None else "one per GPU"
        lines.append(
            f"distributed: {spec.kind}, {each} processes on each of {spec.num_machines} machine(s)"
            + (f", options {dict(spec.options)}" if spec.options else "")
        )
    if recipe.cache_enabled is not None:
        lines.append(f"preprocessing cache: {'on' if recipe.cache_enabled else 'off'}")
    if recipe.packing_spec is not None:
        from trl_sft_kit.packing import get_packer

        packer = get_packer(recipe.packing_spec.strategy)
        lines.append(f"packing: {packer.name} - {getattr(packer, 'description', type(packer).__name__)}")
    else:
        lines.append("packing: off")
    lines.append(_loss_line(recipe.loss_spec))
    lines.append(f"lora: {recipe.lora_spec!r}" if recipe.lora_spec else "lora: off (full fine-tune)")
    if recipe.quantization_spec is not None:
        lines.append(f"quantization: {recipe.quantization_spec!r}")
    if recipe.neftune_spec is not None:
        lines.append(f"neftune: alpha={recipe.neftune_spec.alpha}")
    if recipe.liger_enabled:
        lines.append("liger: on (hub kernels, use_kernels=True)")
    if recipe.tokens_spec != TokensSpec():
        lines.append(f"tokens: {recipe.tokens_spec!r}")
    lines.append("SFTConfig fields:")  # less those the kit sets to prepare the data itself
    for key, value in sorted(config_kwargs(recipe).items()):
        if key not in KIT_FIELDS:
            lines.append(f"  {key} = {value!r}")
    lines.append("  bf16 = True on a bf16-capable GPU, else False (unless set)")
    if deep:
        lines += ["", "measured (inspect):", str(recipe.inspect(rows=0))]
    return "\n".join(lines)


def _loss_line(spec: LossSpec) -> str:
    """explain()'s loss line: the mode, what it trains, and where to see the share of tokens trained."""
    from trl_sft_kit.data.loss_words import AUTO_WORDS, loss_words

    words = {
        "auto": AUTO_WORDS,
        "trl": "TRL's default: the completion for prompt-completion rows, every token otherwise",
        "completion_only": loss_words("completion_only"),
        "assistant_only": loss_words("assistant_only", spec.roles, spec.turns),
        "all": loss_words("all"),
    }[spec.mode]
    options = "".join(
        f", {name}={value!r}"
        for name, value, default in (("turns", spec.turns, "all"), ("roles", spec.roles, ("assistant",)))
        if value != default
    )
    return (
        f"loss: {spec.mode}{options} - {words} (labels computed by the kit, on any chat template; "
        "inspect() and the training log give the share of tokens trained)"
    )
