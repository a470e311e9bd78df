"""After training: load a run's model and tokenizer, and sample from it.

The bodies of ``TrainResult.generate`` and of the model loading that ``.merge`` and ``.push_to_hub`` share. A
result fresh from ``train()`` uses the trained model it holds in memory; one rebuilt by ``load_result`` loads
the model from its folder on first use (the base model named by the adapter, then the adapter on top).
Failures of transformers and peft become ``BackendError`` with what to do next.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.errors import BackendError, RecipeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from trl_sft_kit.result import TrainResult

__all__ = [
    "ADAPTER_CONFIG",
    "DTYPES",
    "MODEL_CONFIG",
    "Conversation",
    "Prompt",
    "generate",
    "has_chat_template",
    "load_model",
    "load_tokenizer",
]

DTYPES = ("auto", "float32", "bfloat16", "float16")
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"

Conversation = Sequence[Mapping[str, Any]]
"""A chat: ``[{"role": "user", "content": "..."}, ...]``."""
Prompt = str | Conversation
"""A plain-text prompt (continued as text) or a conversation (rendered with the chat template)."""


# ------------------------------------------------------------------------------------------ loading


def _adapter_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _base_candidates(result: TrainResult) -> list[tuple[str, dict[str, Any]]]:
    """Where the base model may be loaded from, best first, with the loading options each one takes."""
    candidates: list[tuple[str, dict[str, Any]]] = []
    spec = result.recipe.model_spec if result.recipe is not None else None
    if spec is not None and isinstance(spec.source, str):
        options = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
        candidates.append((spec.source, options))
    saved = _adapter_config(result.adapter_path) if result.adapter_path is not None else {}
    if saved.get("base_model_name_or_path"):
        candidates.append((str(saved["base_model_name_or_path"]), {"revision": saved.get("revision")}))
    if result.base_model:
        candidates.append((result.base_model, {}))
    unique: dict[str, dict[str, Any]] = {}
    for source, options in candidates:
        unique.setdefault(source, options)
    local = [(source, options) for source, options in unique.items() if Path(source).expanduser().is_dir()]
    return local or list(unique.items())


def resolve_dtype(dtype: Any, result: TrainResult) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise RecipeError(
            f"dtype must be one of {', '.join(map(repr, DTYPES))} or a torch.dtype (got {dtype!r})."
        )
    spec = result.recipe.model_spec if result.recipe is not None else None
    if dtype == "auto" and spec is not None and spec.dtype != "auto":
        dtype = spec.dtype
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def load_tokenizer(result: TrainResult) -> PreTrainedTokenizerBase:
    """The tokenizer the run was trained with: the one in memory, else the one saved in its folder."""
    if result.tokenizer is not None:
        return result.tokenizer
    cached = result._cache.get("tokenizer")
    if cached is not None:
        return cached
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(result.output_dir))
    except Exception as exc:
        raise BackendError(
            f"the tokenizer saved in {str(result.output_dir)!r} could not be loaded ({type(exc).__name__}: "
            f"{exc}); the folder should hold tokenizer.json and tokenizer_config.json as train() wrote them."
        ) from exc
    result._cache["tokenizer"] = tokenizer
    return tokenizer


def _load_base(result: TrainResult, dtype: Any) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    failures = []
    for source, options in _base_candidates(result):
        try:
            return AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, **{key: value for key, value in options.items() if value is not None}
            )
        except Exception as exc:
            failures.append(f"{source!r}: {type(exc).__name__}: {exc}")
    tried = "; ".join(failures) or "no base model is named by the recipe, run.json or adapter_config.json"
    raise BackendError(
        f"the base model of the adapter in {str(result.output_dir)!r} could not be loaded ({tried}). "
        "Make the base model available at that path or in the Hugging Face cache (unset HF_HUB_OFFLINE "
        f"to download it), or fix base_model_name_or_path in {ADAPTER_CONFIG}."
    )


def fit_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Grow the embeddings to the tokenizer when the chat template added special tokens during training."""
    embeddings = model.get_input_embeddings()
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None and rows < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))


def load_from_folder(result: TrainResult, dtype: Any) -> Any:
    """A fresh copy of the trained model, loaded from the run's folder (adapter on its base, or full)."""
    if result.adapter_path is not None:
        from peft import PeftModel

        base = _load_base(result, dtype)
        fit_embeddings(base, load_tokenizer(result))
        try:
            return PeftModel.from_pretrained(base, str(result.adapter_path))
        except Exception as exc:
            raise BackendError(
                f"peft could not load the adapter in {str(result.adapter_path)!r} onto {result.base_model!r} "
                f"({type(exc).__name__}: {exc}); check that the adapter was trained on this base model."
            ) from exc
    from transformers import AutoModelForCausalLM

    folder = result.model_path or result.output_dir
    try:
        return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    except Exception as exc:
        raise BackendError(
            f"the model saved in {str(folder)!r} could not be loaded ({type(exc).__name__}: {exc})."
        ) from exc


def load_model(result: TrainResult) -> Any:
    """The trained model to sample from (a ``PeftModel`` for an adapter): the one in memory, else loaded
    from the folder once and kept.

    From a folder, the base model loads in the recipe's dtype and is not quantized again, even for a
    QLoRA run: the answers are those of the adapter on full-precision weights, as after ``merge``.
    """
    if result.model is not None:
        return result.model
    cached = result._cache.get("model")
    if cached is None:
        cached = load_from_folder(result, resolve_dtype("auto", result)).eval()
        result._cache["model"] = cached
    return cached


def has_chat_template(folder: str | os.PathLike[str]) -> bool:
    """Whether the tokenizer saved in ``folder`` has a chat template (read from its files, nothing loaded)."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


# ------------------------------------------------------------------------------------------ generate


def _is_conversation(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(message, Mapping) for message in value)
    )


def _prompt_list(prompts: Prompt | Sequence[Prompt]) -> list[Prompt]:
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, Sequence) and prompts and _is_conversation(prompts):
        return [prompts]  # type: ignore[list-item]
    if isinstance(prompts, Sequence) and all(isinstance(p, str) or _is_conversation(p) for p in prompts):
        return list(prompts)  # type: ignore[arg-type]
    raise RecipeError(
        "generate() takes a prompt string, a conversation (a list of {'role': ..., 'content': ...} dicts), "
        f"or a list of either (got {type(prompts).__name__}: {str(prompts)[:80]!r})."
    )


def _encode(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> Any:
    if isinstance(prompt, str):
        return tokenizer(prompt, return_tensors="pt")
    if not tokenizer.chat_template:
        raise RecipeError(
            "generate() got a conversation, but this tokenizer has no chat template; pass the prompt as "
            "plain text, or train with .chat_template(<name>)."
        )
    try:
        text = tokenizer.apply_chat_template(
            [dict(message) for message in prompt], add_generation_prompt=True, tokenize=False
        )
    except Exception as exc:
        raise RecipeError(
            f"the chat template cannot render this conversation ({type(exc).__name__}: {exc}); give messages "
            "as {'role': 'user' | 'assistant' | 'system', 'content': '...'}."
        ) from exc
    return tokenizer(str(text), return_tensors="pt", add_special_tokens=False)


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, (list, tuple)):
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def generate(
    result: TrainResult,
    prompts: Prompt | Sequence[Prompt],
    *,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    **kwargs: Any,
) -> list[str]:
    """Sample an answer for each prompt from the trained model; see ``TrainResult.generate``."""
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise RecipeError(f"max_new_tokens must be a whole number >= 1 (got {max_new_tokens!r}).")
    items = _prompt_list(prompts)
    if not items:
        return []
    import torch

    tokenizer = load_tokenizer(result)
    model: Any = load_model(result)
    stop = stop_ids(model, tokenizer)
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if stop:
        options["eos_token_id"] = stop
        pad = tokenizer.pad_token_id
        options["pad_token_id"] = pad if pad is not None else stop[0]
    options.update(kwargs)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers = []
    try:
        for prompt in items:
            encoded = _encode(tokenizer, prompt).to(device)
            length = encoded["input_ids"].shape[1]
            try:
                with torch.no_grad():
                    output = model.generate(**encoded, **options)
            except Exception as exc:
                raise BackendError(
                    f"generation failed in transformers ({type(exc).__name__}: {exc})."
                ) from exc
            answers.append(str(tokenizer.decode(output[0, length:], skip_special_tokens=True)))
    finally:
        if was_training:
            model.train()
    return answers
