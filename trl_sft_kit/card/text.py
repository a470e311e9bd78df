"""The model card: the ``README.md`` text rendered from a run record (``run.json``) alone.

The front matter is ``huggingface_hub``'s ``ModelCardData`` (the Hub's own schema); then the base model,
the training data, loss, packing, adapter and quantization, training settings, final metrics, how to use
the model, the recipe and the framework versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trl_sft_kit.card.record import is_hub_id

__all__ = ["TAGS", "render_card"]

TAGS = ("trl", "sft", "trl-sft-kit")

_RECIPE_IN_CARD = 4000
"""The card shows ``recipe.yaml`` inline up to this many characters (inline rows can make it long)."""


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
