"""After training: merge a run's adapter into its base model, and push the run to the Hub.

These are the bodies of ``TrainResult.merge`` and ``.push_to_hub``; loading the model and ``generate`` live in
``trl_sft_kit.generation`` (re-exported here). Failures of transformers, peft and huggingface_hub become
``BackendError`` with what to do next.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.card import RECIPE_FILE, RUN_FILE, read_run_info, write_card
from trl_sft_kit.errors import BackendError, OutputExistsError, RecipeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from trl_sft_kit.result import TrainResult

from trl_sft_kit.generation import (
    ADAPTER_CONFIG,
    DTYPES,
    Conversation,
    Prompt,
    fit_embeddings,
    generate,
    has_chat_template,
    load_from_folder,
    load_model,
    load_tokenizer,
    resolve_dtype,
    stop_ids,
)

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

# ------------------------------------------------------------------------------------------ merge


def _merged_model(result: TrainResult, dtype: Any) -> PreTrainedModel:
    spec = result.recipe.model_spec if result.recipe is not None else None
    if result.adapter_path is None:
        return load_from_folder(result, dtype)
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
        model = load_from_folder(result, dtype)
    try:
        return model.merge_and_unload()
    except Exception as exc:
        raise BackendError(f"peft could not merge the adapter ({type(exc).__name__}: {exc}).") from exc


def merge(
    result: TrainResult, path: str | os.PathLike[str], *, dtype: Any = "auto", overwrite: bool = False
) -> Path:
    """Merge the adapter into its base and save a plain transformers model; see ``TrainResult.merge``."""
    target = Path(path).expanduser()
    torch_dtype = resolve_dtype(dtype, result)
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
    fit_embeddings(model, tokenizer)
    stop = stop_ids(model, tokenizer)
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
