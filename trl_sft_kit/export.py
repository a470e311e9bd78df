"""After training: load a run's model, sample from it, merge its adapter, and push it to the Hub.

These are the bodies of ``TrainResult.generate``, ``.merge`` and ``.push_to_hub``. A result fresh from
``train()`` uses the trained model it holds in memory; one rebuilt by ``load_result`` loads the model from
its folder on first use (the base model named by the adapter, then the adapter on top). Failures of
transformers, peft and huggingface_hub become ``BackendError`` with what to do next.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.card import RECIPE_FILE, RUN_FILE, read_run_info, write_card
from trl_sft_kit.errors import BackendError, OutputExistsError, RecipeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from trl_sft_kit.result import TrainResult

__all__ = [
    "DTYPES",
    "Conversation",
    "Prompt",
    "generate",
    "has_chat_template",
    "hub_offline",
    "load_model",
    "load_tokenizer",
    "merge",
    "push_to_hub",
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


def _torch_dtype(dtype: Any, result: TrainResult) -> Any:
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


def _fit_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Grow the embeddings to the tokenizer when the chat template added special tokens during training."""
    embeddings = model.get_input_embeddings()
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None and rows < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))


def _load_from_folder(result: TrainResult, dtype: Any) -> Any:
    """A fresh copy of the trained model, loaded from the run's folder (adapter on its base, or full)."""
    if result.adapter_path is not None:
        from peft import PeftModel

        base = _load_base(result, dtype)
        _fit_embeddings(base, load_tokenizer(result))
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
        cached = _load_from_folder(result, _torch_dtype("auto", result)).eval()
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


def _stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
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
    stop = _stop_ids(model, tokenizer)
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


# ------------------------------------------------------------------------------------------ merge


def _merged_model(result: TrainResult, dtype: Any) -> PreTrainedModel:
    spec = result.recipe.model_spec if result.recipe is not None else None
    if result.adapter_path is None:
        return _load_from_folder(result, dtype)
    if spec is not None and spec.is_loaded and result.model is not None:
        # The base was an object in memory, trained in place: it cannot be loaded again, so merge a copy.
        if getattr(result.model, "is_loaded_in_4bit", False) or getattr(
            result.model, "is_loaded_in_8bit", False
        ):
            raise RecipeError(
                "a quantized model given as an object cannot be merged; pass its path to .model()."
            )
        model = copy.deepcopy(result.model)
        if dtype != "auto":
            model = model.to(dtype)
    else:
        model = _load_from_folder(result, dtype)
    try:
        return model.merge_and_unload()
    except Exception as exc:
        raise BackendError(f"peft could not merge the adapter ({type(exc).__name__}: {exc}).") from exc


def merge(
    result: TrainResult, path: str | os.PathLike[str], *, dtype: Any = "auto", overwrite: bool = False
) -> Path:
    """Merge the adapter into its base and save a plain transformers model; see ``TrainResult.merge``."""
    target = Path(path).expanduser()
    torch_dtype = _torch_dtype(dtype, result)
    if target.resolve() == Path(result.output_dir).resolve():
        raise RecipeError(
            f"merge() cannot write into the run's own folder {str(target)!r}: the adapter lives there. "
            "Pass another folder, e.g. f'{output_dir}-merged'."
        )
    if (target / ADAPTER_CONFIG).is_file():
        raise RecipeError(
            f"{str(target)!r} holds a LoRA adapter (adapter_config.json); merge into an empty or new folder."
        )
    _check_merge_target(target, overwrite=overwrite)
    tokenizer = load_tokenizer(result)
    model = _merged_model(result, torch_dtype)
    _fit_embeddings(model, tokenizer)
    stop = _stop_ids(model, tokenizer)
    if getattr(model, "generation_config", None) is not None and stop:
        model.generation_config.eos_token_id = stop[0] if len(stop) == 1 else stop
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
    except Exception as exc:
        raise BackendError(
            f"the merged model could not be saved to {str(target)!r} ({type(exc).__name__}: {exc})."
        ) from exc
    _copy_run_files(result, target)
    return target


def _check_merge_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a folder that holds files, as ``train()`` does; with ``overwrite``, clear one the kit wrote."""
    from trl_sft_kit.runs import prepare_output_dir

    if target.exists() and not target.is_dir():
        raise OutputExistsError(
            f"{str(target)!r} is a file, not a folder; merge into a folder.", path=str(target)
        )
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not overwrite:
        listing = ", ".join(sorted(child.name for child in target.iterdir())[:5])
        raise OutputExistsError(
            f"{str(target)!r} already holds files ({listing}), and merge() would write over them. Pass "
            "overwrite=True to replace an earlier merge there, or choose another folder.",
            path=str(target),
        )
    prepare_output_dir(target, overwrite=True)  # clears only a folder the kit's own record marks


def _copy_run_files(result: TrainResult, target: Path) -> None:
    """Give the merged folder the run's record, its recipe and a card that describes the merged model."""
    source = Path(result.output_dir)
    for name in (RUN_FILE, RECIPE_FILE):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    info = read_run_info(source)
    if info is None:
        info = {
            "base_model": result.base_model,
            "kind": "lora" if result.adapter_path is not None else "full",
            "metrics": result.metrics,
            "losses": list(result.losses),
            "global_step": result.global_step,
            "recipe_file": RECIPE_FILE if (target / RECIPE_FILE).is_file() else None,
        }
    info = {**info, "output_dir": str(target)}
    write_card(target, info, merged=result.adapter_path is not None)


# ------------------------------------------------------------------------------------------ hub


def hub_offline() -> bool:
    """Whether the Hub is switched off: ``HF_HUB_OFFLINE`` set now, or when huggingface_hub was imported."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _upload_later(repo_id: str, folder: str, *, merged: bool = False) -> str:
    merge_first = ""
    if merged:
        merge_first = f"merge first with result.merge({folder + '-merged'!r}), then "
        folder += "-merged"
    return (
        f"push later with result.push_to_hub({repo_id!r}) once online, or {merge_first}upload the folder "
        f"with `hf upload {repo_id} {folder}` (`huggingface-cli upload {repo_id} {folder}` with an older "
        "huggingface_hub)."
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of the HTTP client under huggingface_hub (httpx, or its successor) and of the OS."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        base = getattr(module, "HTTPError", None)
        if isinstance(base, type) and issubclass(base, BaseException):
            errors.append(base)
    return tuple(errors)


def push_to_hub(
    result: TrainResult,
    repo_id: str,
    *,
    private: bool = True,
    merged: bool = False,
    token: str | None = None,
) -> str:
    """Upload the run to the Hub; see ``TrainResult.push_to_hub``. Refuses before any network call when
    offline or not logged in."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise RecipeError(f"{repo_id!r} is not a Hub repository id: {exc} Use 'owner/name'.") from exc
    folder = str(result.output_dir)
    if hub_offline():
        raise BackendError(
            "cannot push to the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1). Unset "
            f"HF_HUB_OFFLINE and {_upload_later(repo_id, folder, merged=merged)}"
        )
    token = token or _stored_token()
    if not token:
        raise BackendError(
            "cannot push to the Hugging Face Hub: not logged in. Run `hf auth login` (`huggingface-cli "
            "login` with an older huggingface_hub) or set HF_TOKEN to a token with write access, or pass "
            "token=..."
        )
    if not merged:
        what = "LoRA adapter" if result.adapter_path is not None else "model"
        return _upload(
            repo_id,
            Path(folder),
            private=private,
            token=token,
            what=what,
            later=_upload_later(repo_id, folder),
        )
    with tempfile.TemporaryDirectory(prefix="trl-sft-kit-merged-") as scratch:
        merged_folder = merge(result, Path(scratch) / "merged")
        later = _upload_later(repo_id, folder, merged=True)
        return _upload(repo_id, merged_folder, private=private, token=token, what="merged model", later=later)


def _stored_token() -> str | None:
    from huggingface_hub import get_token

    try:
        return get_token()
    except Exception as exc:  # an OIDC exchange that fails raises instead of returning None
        raise BackendError(
            f"cannot read the Hugging Face token ({type(exc).__name__}: {exc}); run `hf auth login` or set "
            "HF_TOKEN."
        ) from exc


def _upload(repo_id: str, folder: Path, *, private: bool, token: str, what: str, later: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=f"Upload {what} trained with trl-sft-kit",
            ignore_patterns=["*/*"],  # the folder's own files; no checkpoints or logs below it
        )
    except OfflineModeIsEnabled as exc:
        raise BackendError(
            f"cannot push to the Hugging Face Hub: offline mode is on. {later[0].upper()}{later[1:]}"
        ) from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            hint = "the Hub refused the token: log in again with `hf auth login` or set a valid HF_TOKEN."
        elif status == 403:
            hint = (
                f"the token may not write to {repo_id!r}: use a token with write access, or a repository in "
                "a namespace you own."
            )
        else:
            hint = f"the Hub answered {status}: {exc}"
        raise BackendError(f"could not push to {repo_id!r}: {hint}") from exc
    except _network_errors() as exc:
        raise BackendError(
            f"could not reach the Hugging Face Hub to push {repo_id!r} ({type(exc).__name__}: {exc}); check "
            f"the connection, or {later}"
        ) from exc
    return str(url)
