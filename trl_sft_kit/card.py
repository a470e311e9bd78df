"""The files every output folder gets: a model card (``README.md``), ``recipe.yaml`` and ``run.json``.

``run.json`` is the record of the run as plain data: the base model, metrics, losses, steps, what the data
became (format, row counts, tokens carrying loss, packing), the data fingerprint (``data_fingerprint``: a
SHA-256 of the tokens and labels trained on and of the source files), the adapter and quantization settings
and the library versions. The model card is rendered from that record alone (``render_card``), so a merged
copy of the model gets its card from the same data. ``load_result`` reads the record back.

Nothing here imports torch, transformers, TRL or datasets.
"""

from __future__ import annotations

import datetime
import enum
import json
import platform
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.errors import SFTKitError
from trl_sft_kit.specs import spec_to_dict, thaw

if TYPE_CHECKING:
    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.result import TrainResult

__all__ = [
    "CARD_FILE",
    "RECIPE_FILE",
    "RUN_FILE",
    "library_versions",
    "read_run_info",
    "render_card",
    "run_info",
    "write_card",
    "write_run_files",
]

CARD_FILE = "README.md"
RECIPE_FILE = "recipe.yaml"
RUN_FILE = "run.json"
RUN_FORMAT = 1
"""Version of the ``run.json`` layout."""

TAGS = ("trl", "sft", "trl-sft-kit")
_DISTRIBUTIONS = (
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("trl", "trl"),
    ("peft", "peft"),
    ("datasets", "datasets"),
    ("trl_sft_kit", "trl-sft-kit"),
    ("accelerate", "accelerate"),
    ("bitsandbytes", "bitsandbytes"),
    ("huggingface_hub", "huggingface_hub"),
)
_TRAINING_KEYS = (
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "optim",
    "weight_decay",
    "bf16",
    "fp16",
    "seed",
)
_RECIPE_IN_CARD = 4000
"""The card shows ``recipe.yaml`` inline up to this many characters (inline rows can make it long)."""


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a run depends on; a missing optional one is left out."""
    versions = {"python": platform.python_version()}
    for name, distribution in _DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ------------------------------------------------------------------------------------------ record


def run_info(
    compiled: Compiled,
    result: TrainResult,
    *,
    recipe_file: str | None,
    recipe_note: str,
    fingerprint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a finished run as plain data (what ``run.json`` holds and the card is made from).

    ``fingerprint`` is the data fingerprint (``trl_sft_kit.runs.data_fingerprint``): a SHA-256 of the
    tokens and labels trained on, and of the source files.
    """
    recipe = compiled.recipe
    model = recipe.model_spec
    tokenizer = result.tokenizer
    report = compiled.report
    config = compiled.config
    training = {key: _plain(getattr(config, key, None)) for key in _TRAINING_KEYS}
    quantization = None
    if recipe.quantization_spec is not None:
        quantization = {"mode": recipe.quantization_spec.mode, **spec_to_dict(recipe.quantization_spec)}
    return {
        "format_version": RUN_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(result.output_dir),
        "base_model": compiled.model_name,
        "model": {
            "dtype": model.dtype if model is not None else "auto",
            "revision": model.revision if model is not None else None,
            "trust_remote_code": model.trust_remote_code if model is not None else False,
            "loaded_object": bool(model is not None and model.is_loaded),
        },
        "kind": "lora" if result.adapter_path is not None else "full",
        "global_step": result.global_step,
        "metrics": {key: _plain(value) for key, value in result.metrics.items()},
        "losses": list(result.losses),
        "recipe_file": recipe_file,
        "recipe_note": recipe_note,
        "data": {
            "source": report.source,
            "format": report.format,
            "canonical": report.canonical,
            "detection": report.detection,
            "rows_read": report.rows_read,
            "rows_kept": report.rows_kept,
            "rows_skipped": len(report.skipped),
            "rows_bad": report.rows_bad,
            "rows_excluded": report.rows_excluded,
            "skipped_by_field": report.skipped_by_field(),
            "notes": list(report.notes),
            "media_rows": report.media_rows,
            "media_dropped": dict(report.media_dropped),
        },
        "hub_datasets": _hub_datasets(recipe),
        "license": None,  # the trained model's licence, when known: the card's `license` field
        "data_fingerprint": _plain(dict(fingerprint)) if fingerprint is not None else None,
        "tokenization": {
            key: _plain(value)
            for key, value in spec_to_dict(compiled.tokenization).items()
            if key != "skipped"
        },
        "loss": {
            "mode": recipe.loss_spec.mode,
            "turns": recipe.loss_spec.turns,
            "roles": list(recipe.loss_spec.roles),
        },
        "packing": (
            {**spec_to_dict(compiled.packing), "summary": compiled.packing.summary()}
            if compiled.packing is not None
            else None
        ),
        "lora": spec_to_dict(recipe.lora_spec) if recipe.lora_spec is not None else None,
        "quantization": quantization,
        "neftune": recipe.neftune_spec.alpha if recipe.neftune_spec is not None else None,
        "liger": recipe.liger_enabled,
        "chat_template": recipe.tokens_spec.chat_template,
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "eos_token": getattr(tokenizer, "eos_token", None),
        "training": training,
        "data_summary": result.data_summary,
        "versions": library_versions(),
    }


def _hub_datasets(recipe: SFTRecipe) -> list[str]:
    """The Hub dataset ids the recipe trains (and evaluates) on, for the card's ``datasets`` field."""
    from trl_sft_kit.data.sources import SUPPORTED_SUFFIXES

    found: list[str] = []
    for spec in recipe.dataset_specs:
        for source in (spec.source, spec.eval):
            if (
                isinstance(source, str)
                and not source.lower().endswith(SUPPORTED_SUFFIXES)
                and is_hub_id(source)
                and source not in found
            ):
                found.append(source)
    return found


def _plain(value: Any) -> Any:
    """A value JSON can hold: numbers, strings, booleans, None, lists and dicts; anything else as text."""
    value = thaw(value)
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def write_run_files(
    compiled: Compiled, result: TrainResult, *, fingerprint: Mapping[str, Any] | None = None
) -> None:
    """Write ``recipe.yaml`` (when the recipe can be written), ``run.json`` and the model card ``README.md``.

    Called at the end of ``Compiled.train()``; the card replaces the template card peft writes.
    ``fingerprint`` is the data fingerprint, kept in ``run.json``.
    """
    try:
        _write_run_files(compiled, result, fingerprint)
    except OSError as exc:  # the model is saved already: a card that cannot be written must not lose the run
        warnings.warn(
            f"the model card and run files could not be written to {str(result.output_dir)!r}: {exc}",
            RuntimeWarning,
            stacklevel=3,
        )


def _write_run_files(compiled: Compiled, result: TrainResult, fingerprint: Mapping[str, Any] | None) -> None:
    folder = result.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    recipe_file: str | None = None
    recipe_note = ""
    try:
        compiled.recipe.to_yaml(folder / RECIPE_FILE)
        recipe_file = RECIPE_FILE
    except SFTKitError as exc:
        recipe_note = str(exc)
        (folder / RECIPE_FILE).unlink(missing_ok=True)  # never leave a stale recipe from an earlier run
    info = run_info(
        compiled, result, recipe_file=recipe_file, recipe_note=recipe_note, fingerprint=fingerprint
    )
    (folder / RUN_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_card(folder, info)


def read_run_info(folder: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` record in ``folder``, or None when there is none (a folder from an older run)."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_card(folder: str | Path, info: Mapping[str, Any], *, merged: bool = False) -> Path:
    """Render the card for ``info`` into ``folder/README.md`` (the recipe inlined when it is short)."""
    folder = Path(folder)
    recipe_text = None
    if info.get("recipe_file") and (folder / RECIPE_FILE).is_file():
        recipe_text = (folder / RECIPE_FILE).read_text(encoding="utf-8")
    path = folder / CARD_FILE
    path.write_text(render_card(info, merged=merged, recipe_text=recipe_text), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ card


def render_card(info: Mapping[str, Any], *, merged: bool = False, recipe_text: str | None = None) -> str:
    """The model card (``README.md`` text) for a run record, as written by ``run_info``.

    Args:
        info: the run record (``run.json``).
        merged: the card describes the merged model (a plain transformers model), not the adapter.
        recipe_text: ``recipe.yaml``'s text, shown inline when short.

    >>> card = render_card({"base_model": "Qwen/Qwen2.5-0.5B", "kind": "lora", "lora": {"r": 8, "alpha": 16}})
    >>> card.splitlines()[1:3]
    ['base_model: Qwen/Qwen2.5-0.5B', 'library_name: peft']
    """
    base = str(info.get("base_model") or "unknown")
    adapter = info.get("kind") == "lora" and not merged
    sections = [
        _front_matter(info, base, adapter=adapter, lora=info.get("lora") is not None),
        _title(info, base, adapter=adapter, merged=merged),
        _data_section(info),
        _loss_section(info),
        _packing_section(info),
        _adapter_section(info, merged=merged),
        _training_section(info),
        _metrics_section(info),
        _usage_section(info, adapter=adapter),
        _recipe_section(info, recipe_text),
        _versions_section(info),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is a Hub model id (``data.sources.is_hub_id``, the Hub's rule), not a local folder."""
    from trl_sft_kit.data.sources import is_hub_id as hub_id_shaped

    return hub_id_shaped(name) and not Path(name).expanduser().exists()


def _front_matter(info: Mapping[str, Any], base: str, *, adapter: bool, lora: bool) -> str:
    """The card's YAML metadata, built by ``huggingface_hub.ModelCardData`` (the Hub's own schema)."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        # The Hub refuses a card whose base_model is not a model id, so a local path stays in the text only.
        base_model=base if is_hub_id(base) else None,
        datasets=list(info.get("hub_datasets") or []) or None,
        license=info.get("license") or None,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="text-generation",
        tags=[*TAGS, *(["lora"] if lora else [])],
    )
    return f"---\n{data.to_yaml()}\n---"


def _title(info: Mapping[str, Any], base: str, *, adapter: bool, merged: bool) -> str:
    name = Path(str(info.get("output_dir") or "model")).name or "model"
    quantized = info.get("quantization")
    if merged:
        what = "A model made by merging a LoRA adapter into its base model"
        if quantized:
            what += (
                f" (trained as QLoRA on the {quantized.get('mode', '4bit')} base; merged into full weights)"
            )
    elif adapter:
        what = "A QLoRA adapter" if quantized else "A LoRA adapter"
        what += " for its base model"
    else:
        what = "A fully fine-tuned model"
    model = info.get("model") or {}
    details = [f"- **Base model:** `{base}`"]
    if model.get("revision"):
        details.append(f"- **Revision:** `{model['revision']}`")
    if model.get("dtype") and model.get("dtype") != "auto":
        details.append(f"- **Loaded in:** `{model['dtype']}`")
    template = info.get("chat_template")
    if template:
        details.append(f"- **Chat template:** `{template}`")
    elif info.get("has_chat_template"):
        details.append("- **Chat template:** the tokenizer's own")
    if info.get("eos_token"):
        details.append(f"- **End-of-sequence token:** `{info['eos_token']}`")
    if info.get("created"):
        details.append(f"- **Trained:** {info['created']}")
    return (
        f"# {name}\n\n{what}, trained with supervised fine-tuning (SFT) by "
        "trl-sft-kit on top of [TRL](https://github.com/huggingface/trl).\n\n"
        "## Base model\n\n" + "\n".join(details)
    )


def _data_section(info: Mapping[str, Any]) -> str:
    data = info.get("data")
    if not data:
        return ""
    lines = [
        "## Training data",
        "",
        "| source | format | rows read | rows kept | rows skipped |",
        "|---|---|---:|---:|---:|",
        f"| `{data.get('source')}` | `{data.get('format')}` (as `{data.get('canonical')}` rows) "
        f"| {data.get('rows_read')} | {data.get('rows_kept')} | {data.get('rows_skipped', 0)} |",
    ]
    if data.get("detection"):
        lines += ["", f"Detection: {data['detection']}"]
    if data.get("rows_excluded"):
        lines.append(
            f"Of the rows skipped, {data['rows_excluded']} were left out by the format and "
            f"{data.get('rows_bad', 0)} were bad."
        )
    by_field = data.get("skipped_by_field") or {}
    if by_field:
        lines.append("Skipped rows by field: " + ", ".join(f"`{k}` {v}" for k, v in by_field.items()) + ".")
    lines += [f"Note: {note}" for note in data.get("notes") or ()]
    fingerprint = info.get("data_fingerprint") or {}
    if fingerprint.get("sha256"):
        lines.append(
            f"Data fingerprint (SHA-256 of the {fingerprint.get('rows')} rows of tokens and labels trained "
            f"on): `{fingerprint['sha256']}`."
        )
    return "\n".join(lines)


def _loss_section(info: Mapping[str, Any]) -> str:
    loss = info.get("loss") or {}
    tokens = info.get("tokenization") or {}
    if not loss and not tokens:
        return ""
    mode = loss.get("mode", "auto")
    lines = ["## Loss", "", f"- **Loss mode:** `{mode}`"]
    effective = tokens.get("loss")
    if effective and effective != mode:
        lines[-1] += f" (resolved to `{effective}` for this data)"
    if loss.get("turns", "all") != "all":
        lines.append(f"- **Assistant turns trained:** `{loss['turns']}`")
    if tokens:
        total, trained = int(tokens.get("tokens") or 0), int(tokens.get("trained_tokens") or 0)
        share = f" ({trained / total:.1%})" if total else ""
        lines.append(
            f"- **Tokens:** {tokens.get('rows_out')} rows, {total} tokens, {trained} carry loss{share}"
        )
        if tokens.get("max_length") is not None:
            lines.append(
                f"- **max_length {tokens['max_length']}:** {tokens.get('rows_truncated', 0)} rows truncated, "
                f"{tokens.get('tokens_truncated', 0)} tokens cut"
            )
        dropped = int(tokens.get("rows_without_trained_tokens") or 0) + int(
            tokens.get("rows_all_trained_tokens_cut") or 0
        )
        if dropped:
            lines.append(f"- **Rows dropped (no token left carrying loss):** {dropped}")
    return "\n".join(lines)


def _packing_section(info: Mapping[str, Any]) -> str:
    packing = info.get("packing")
    if not packing:
        return "## Packing\n\nOff: one sequence per row."
    return f"## Packing\n\n{packing.get('summary') or packing.get('strategy')}"


def _adapter_section(info: Mapping[str, Any], *, merged: bool) -> str:
    lora, quant = info.get("lora"), info.get("quantization")
    lines = ["## Adapter and quantization", ""]
    if lora:
        target = lora.get("target_modules")
        target = ", ".join(target) if isinstance(target, list) else target
        lines.append(
            f"- **LoRA:** r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
            f"target modules: {target}"
        )
        options = lora.get("options") or {}
        if options:
            lines.append("- **More LoRA options:** " + ", ".join(f"{k}={v!r}" for k, v in options.items()))
        if merged:
            lines.append("- The adapter is merged into the weights here; no peft is needed to load it.")
    else:
        lines.append("- **LoRA:** none (every weight was trained)")
    if quant:
        lines.append(
            f"- **Quantization (training only):** bitsandbytes {quant.get('mode')}, "
            f"quant_type={quant.get('quant_type')}, double_quant={quant.get('double_quant')}, "
            f"compute_dtype={quant.get('compute_dtype')}"
        )
    else:
        lines.append("- **Quantization:** none")
    if info.get("neftune") is not None:
        lines.append(f"- **NEFTune:** alpha={info['neftune']}")
    if info.get("liger"):
        lines.append("- **Liger kernels:** on")
    return "\n".join(lines)


def _training_section(info: Mapping[str, Any]) -> str:
    training = {key: value for key, value in (info.get("training") or {}).items() if value is not None}
    if not training:
        return ""
    lines = ["## Training settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| `{key}` | `{value}` |" for key, value in training.items()]
    return "\n".join(lines)


def _metrics_section(info: Mapping[str, Any]) -> str:
    metrics = dict(info.get("metrics") or {})
    losses = info.get("losses") or []
    lines = ["## Final metrics", "", "| metric | value |", "|---|---|"]
    lines.append(f"| global_step | {info.get('global_step', 0)} |")
    lines += [f"| {key} | {_number(value)} |" for key, value in metrics.items()]
    if losses:
        lines.append(f"| first logged loss | {_number(losses[0])} |")
        lines.append(f"| last logged loss | {_number(losses[-1])} |")
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _usage_section(info: Mapping[str, Any], *, adapter: bool) -> str:
    base = str(info.get("base_model") or "BASE_MODEL")
    where = "path/to/this/folder"
    if adapter:
        code = (
            "```python\n"
            "from peft import AutoPeftModelForCausalLM\n"
            "from transformers import AutoTokenizer\n\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{where}")  # loads `{base}` under it\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")\n'
            "```\n\n"
            "With trl-sft-kit, to look at answers or merge the adapter into a plain model:\n\n"
            "```python\n"
            "from trl_sft_kit import load_result\n\n"
            f'result = load_result("{where}")\n'
            'print(result.generate([{"role": "user", "content": "Hello!"}]))\n'
            f'result.merge("{where}-merged")\n'
            "```"
        )
    else:
        code = (
            "```python\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{where}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")\n'
            "```"
        )
    cli = f"On the command line: `trl-sft-kit generate {where} --prompt 'Hello!'`."
    return f"## How to use\n\n{code}\n\n{cli}"


def _recipe_section(info: Mapping[str, Any], recipe_text: str | None) -> str:
    if not info.get("recipe_file"):
        note = info.get("recipe_note") or "the recipe was not saved."
        return (
            "## Recipe\n\nThe recipe could not be written to `recipe.yaml` (it holds a loaded model object "
            f"or an in-memory dataset), so this run cannot be repeated from a file: {note}"
        )
    if recipe_text is not None and len(recipe_text) <= _RECIPE_IN_CARD:
        return (
            "## Recipe\n\nRepeat this run with `trl-sft-kit train recipe.yaml`:\n\n"
            f"```yaml\n{recipe_text.rstrip()}\n```"
        )
    return (
        "## Recipe\n\nThe recipe is in `recipe.yaml`; repeat this run with `trl-sft-kit train recipe.yaml`."
    )


def _versions_section(info: Mapping[str, Any]) -> str:
    versions = info.get("versions") or {}
    if not versions:
        return ""
    return "## Framework versions\n\n" + "\n".join(f"- {name}: {value}" for name, value in versions.items())
