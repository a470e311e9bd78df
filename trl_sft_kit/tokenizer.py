"""The tokenizer a recipe trains with: loaded (a copy when passed in), its chat template and special tokens.

Chat templates come by name from the ones shipped inside TRL (``"qwen2_5"``, ``"llama3_2"``), from a
``.jinja`` file, or from another tokenizer. Tokens a template writes that the vocabulary lacks are added
(their ids are returned, so the model's embeddings can be resized and trained); a template that cannot
render a conversation with this tokenizer fails here, with its name.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

from trl_sft_kit.data.sources import is_hub_id
from trl_sft_kit.errors import BackendError, RecipeError
from trl_sft_kit.specs import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.recipe import SFTRecipe

__all__ = [
    "apply_tokens",
    "bundled_template_names",
    "load_failure_message",
    "load_tokenizer",
    "read_chat_template",
]

MODEL_ENV = "TRL_SFT_KIT_MODEL"
"""The environment variable naming the model when a recipe has no ``.model(...)``."""


def load_tokenizer(spec: ModelSpec, origin: str) -> PreTrainedTokenizerBase:
    """The tokenizer to train with: a copy of a loaded one, or loaded from the model's folder or hub id.

    Raises:
        BackendError: a model path that does not exist (said before any hub lookup), or a failed load.
        RecipeError: a loaded model given without its tokenizer.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerBase

    source = spec.tokenizer if spec.tokenizer is not None else spec.source
    if isinstance(source, PreTrainedTokenizerBase):
        return copy.deepcopy(source)
    if not isinstance(source, str):
        raise RecipeError(
            "a loaded model needs its tokenizer: pass .model(model, tokenizer=tokenizer) "
            "(a loaded tokenizer or a path)."
        )
    if not Path(source).expanduser().exists() and not is_hub_id(source):
        raise BackendError(
            f"the model path {source!r} (taken from {origin}) does not exist. Check the path: pass a local "
            f"folder or a hub id with .model(...), or set ${MODEL_ENV}."
        )
    try:
        return AutoTokenizer.from_pretrained(
            source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except Exception as exc:
        raise BackendError(load_failure_message("tokenizer", source, origin, exc)) from exc


def load_failure_message(what: str, source: str, origin: str, exc: Exception) -> str:
    hint = f"Pass a local folder or a hub id with .model(...), or set ${MODEL_ENV}" + (
        " (no model was chosen, so the default was tried)" if origin == "the default" else ""
    )
    return (
        f"could not load the {what} of {source!r} (taken from {origin}): {type(exc).__name__}: {exc}. "
        f"If it is a hub id, this machine must be online or have it cached. {hint}."
    )


_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>")


def read_chat_template(name_or_path: str) -> str:
    """The text of a chat template given as a bundled TRL name, a ``.jinja`` file, or a tokenizer path.

    Raises:
        RecipeError: none of the three.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    bundled = _bundled_template_dir() / f"{name_or_path}.jinja"
    if bundled.is_file():
        return bundled.read_text(encoding="utf-8")
    if path.is_dir() or "/" in name_or_path:
        from transformers import AutoTokenizer

        try:
            template = AutoTokenizer.from_pretrained(name_or_path).chat_template
        except Exception as exc:
            raise RecipeError(
                f"chat template {name_or_path!r} is neither a file, a template bundled with TRL, "
                "nor a loadable "
                f"tokenizer ({type(exc).__name__}: {exc})."
            ) from exc
        if not template:
            raise RecipeError(f"the tokenizer at {name_or_path!r} has no chat template to take.")
        return str(template)
    names = ", ".join(bundled_template_names())
    raise RecipeError(
        f"chat template {name_or_path!r} is neither a file, a tokenizer folder, nor a template bundled with "
        f"TRL ({names})."
    )


def _bundled_template_dir() -> Path:
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent")
    return Path(next(iter(spec.submodule_search_locations))) / "chat_templates"


def bundled_template_names() -> tuple[str, ...]:
    """Names of the chat templates shipped inside the installed TRL (found without importing it)."""
    return tuple(sorted(p.stem for p in _bundled_template_dir().glob("*.jinja")))


def apply_tokens(tokenizer: PreTrainedTokenizerBase, recipe: SFTRecipe) -> list[int]:
    """Set the chat template, pad and eos tokens on the (copied) tokenizer; return ids of tokens added."""
    spec = recipe.tokens_spec
    added: list[int] = []
    if spec.chat_template is not None:
        template = read_chat_template(spec.chat_template)
        tokenizer.chat_template = template
        vocab = tokenizer.get_vocab()
        missing = sorted({token for token in _SPECIAL_TOKEN.findall(template) if token not in vocab})
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
            added = [tokenizer.get_vocab()[token] for token in missing]
    vocab = tokenizer.get_vocab()
    for role, token in (("eos", spec.eos), ("pad", spec.pad)):
        if token is not None and token not in vocab:
            raise RecipeError(
                f"the {role} token {token!r} is not in the tokenizer's vocabulary; choose one of its tokens "
                f"(e.g. {tokenizer.eos_token!r}) or a chat template that defines it."
            )
    if spec.pad is not None:
        tokenizer.pad_token = spec.pad
    if spec.chat_template is not None:
        probe_template(tokenizer, spec.chat_template)
    return added


_PROBE = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
]


def probe_template(tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Render a short conversation so a template that cannot work fails here, with its name."""
    try:
        tokenizer.apply_chat_template(_PROBE, tokenize=False)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        hint = ""
        if "bos_token" in str(exc) or "eos_token" in str(exc):
            hint = (
                " The template uses a token this tokenizer does not define; "
                "pick a template made for this model."
            )
        raise RecipeError(
            f"chat template {name!r} cannot render a conversation with this tokenizer ({detail}).{hint}"
        ) from exc
