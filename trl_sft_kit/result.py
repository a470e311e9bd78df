"""What a training run produced, and what to do with it next.

``TrainResult`` is what ``train()`` returns; ``load_result(output_dir)`` rebuilds one from a run's folder.
Either can look at what the model now says (``generate``), merge its LoRA adapter into a plain
transformers model (``merge``) and upload it (``push_to_hub``); the work is done in ``trl_sft_kit.export``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.errors import RunError, SFTKitError

if TYPE_CHECKING:
    from trl_sft_kit.export import Prompt
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["TrainResult", "load_result"]


@attrs.frozen
class TrainResult:
    """What ``train()`` produced.

    Attributes:
        metrics: the trainer's final metrics (``train_loss``, ``train_runtime``, ...).
        output_dir: where everything was written.
        adapter_path: the folder holding ``adapter_model.safetensors`` when LoRA was used, else None.
        model_path: the folder holding the full model when no adapter was trained, else None.
        losses: the logged training losses, in order.
        global_step: optimisation steps taken.
        recipe: the recipe that was trained.
        base_model: the base model's name or path.
        data_summary: what the data became (format, rows, tokens, truncation, packing).
        model: the trained model in memory (a ``PeftModel`` with LoRA), for the next step of a pipeline;
            None for a result rebuilt by ``load_result`` (the model is then loaded on first use).
        tokenizer: the tokenizer it was trained with (None after ``load_result``, loaded on first use).
        resumed_from: the checkpoint ``train(resume=True)`` continued from, else None.
        passed_over: one sentence for each newer checkpoint that resume passed over as incomplete.
    """

    metrics: dict[str, float]
    output_dir: Path
    adapter_path: Path | None
    model_path: Path | None
    losses: tuple[float, ...]
    global_step: int
    recipe: SFTRecipe | None = attrs.field(default=None, repr=False)
    base_model: str = ""
    data_summary: str = attrs.field(default="", repr=False)
    model: Any = attrs.field(default=None, eq=False, repr=False)
    tokenizer: Any = attrs.field(default=None, eq=False, repr=False)
    resumed_from: Path | None = attrs.field(default=None, repr=False)
    passed_over: tuple[str, ...] = attrs.field(default=(), repr=False)
    _cache: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    """The model and tokenizer loaded from ``output_dir`` when none is held in memory."""

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        """Answers of the trained model, for a quick look at what it now says.

        A string is continued as plain text; a conversation (a list of ``{"role", "content"}`` dicts) is
        rendered with the chat template and ``add_generation_prompt=True``; a list of either gives one
        answer each. Decoding is greedy unless ``do_sample=True``; further keyword arguments go to
        ``model.generate`` (``temperature=``, ``top_p=``, ...). The answer holds the new tokens only.
        The model held in memory is used when there is one; otherwise it is loaded from ``output_dir``
        once (the base model in the recipe's dtype, not quantized, with the adapter on top).

        Args:
            prompts: a prompt string, a conversation, or a list of either.
            max_new_tokens: the most tokens to add to each prompt.
            do_sample: sample instead of taking the likeliest token.

        Returns:
            One answer per prompt, in order (a list of one for a single prompt).

        Raises:
            RecipeError: the prompts are of the wrong kind, or a conversation meets a tokenizer without a
                chat template.
            BackendError: the model cannot be loaded from ``output_dir``, or generation fails.

        Examples:

            result.generate([{"role": "user", "content": "What colour is the sky?"}], max_new_tokens=16)
            ['The sky is blue.']
        """
        from trl_sft_kit.export import generate

        return generate(self, prompts, max_new_tokens=max_new_tokens, do_sample=do_sample, **kwargs)

    def merge(self, path: str | os.PathLike[str], *, dtype: Any = "auto", overwrite: bool = False) -> Path:
        """Merge the LoRA adapter into its base model and save a plain transformers model to ``path``.

        The base model is loaded again from its name or path in ``dtype`` (for a QLoRA run: in that dtype,
        never in 4 bits), the adapter applied and merged, and the model saved with its tokenizer and chat
        template; ``AutoModelForCausalLM.from_pretrained(path)`` then loads it without peft. The folder
        also gets a model card, ``run.json`` and ``recipe.yaml``. A full fine-tune has no adapter: its
        model is saved to ``path`` as it is, in ``dtype``.

        Args:
            path: a new or empty folder (not the run's own folder).
            overwrite: replace what an earlier ``merge`` (or run) of the kit left in ``path``; a folder
                holding files is refused without it, as ``train()`` refuses one.
            dtype: ``"auto"`` (the recipe's model dtype, else the checkpoint's), ``"float32"``,
                ``"bfloat16"``, ``"float16"`` or a ``torch.dtype``.

        Returns:
            ``path``, as a ``Path``.

        Raises:
            RecipeError: ``path`` is the run's folder or holds an adapter, or ``dtype`` is unknown.
            OutputExistsError: ``path`` holds files and ``overwrite`` is not set, or it is not a folder
                the kit wrote.
            BackendError: the base model or the adapter cannot be loaded, merged or saved.

        Examples:

            merged = result.merge("outputs/sft-merged", dtype="bfloat16")
            AutoModelForCausalLM.from_pretrained(merged)
        """
        from trl_sft_kit.export import merge

        return merge(self, path, dtype=dtype, overwrite=overwrite)

    def push_to_hub(
        self, repo_id: str, *, private: bool = True, merged: bool = False, token: str | None = None
    ) -> str:
        """Upload the run's folder (adapter or model, tokenizer, card, recipe) to a Hub model repository.

        The repository is created when missing (``private`` applies then only). ``merged=True`` uploads the
        merged model instead of the adapter (merged in a temporary folder). Only the folder's own files are
        sent, never checkpoints or logs below it. Offline (``HF_HUB_OFFLINE=1``) or without a token, it
        refuses before any network call.

        Args:
            repo_id: ``"owner/name"``.
            private: create the repository private.
            merged: upload the merged model rather than the adapter.
            token: a Hub token; by default the one from ``hf auth login`` or ``HF_TOKEN``.

        Returns:
            The repository's URL.

        Raises:
            RecipeError: ``repo_id`` is not a repository id.
            BackendError: offline, not logged in, the Hub refused, or the network failed; the message says
                how to upload later.
        """
        from trl_sft_kit.export import push_to_hub

        return push_to_hub(self, repo_id, private=private, merged=merged, token=token)


def load_result(output_dir: str | os.PathLike[str]) -> TrainResult:
    """Rebuild the ``TrainResult`` of a finished run from its output folder, without loading the model.

    Reads the adapter config (or the model config) to find the base model, ``recipe.yaml`` and
    ``run.json`` for the recipe, metrics, losses and steps. A folder written before ``run.json`` existed
    still loads, with empty metrics. The model and tokenizer load on first ``generate``.

    Raises:
        RunError: ``output_dir`` is not a folder that ``train()`` wrote.

    Examples:

        result = load_result("outputs/sft")
        result.generate("Once upon a time")
    """
    from trl_sft_kit.card import RECIPE_FILE, read_run_info

    folder = Path(output_dir).expanduser()
    if not folder.is_dir():
        raise RunError(
            f"{str(folder)!r} is not a folder; pass the output_dir of a training run (the folder holding "
            "adapter_config.json or config.json).",
            path=str(folder),
        )
    adapter = folder / "adapter_config.json"
    if not adapter.is_file() and not (folder / "config.json").is_file():
        raise RunError(
            f"{str(folder)!r} is not a training output folder: it holds neither adapter_config.json (a LoRA "
            "adapter) nor config.json (a full model). Pass the output_dir that train() wrote.",
            path=str(folder),
        )
    info = read_run_info(folder) or {}
    recipe = None
    if (folder / RECIPE_FILE).is_file():
        from trl_sft_kit.recipe import SFTRecipe

        try:
            recipe = SFTRecipe.from_yaml(folder / RECIPE_FILE)
        except SFTKitError:
            recipe = None  # a recipe written by another version; the model still loads from its folder
    config = _read_json(adapter if adapter.is_file() else folder / "config.json")
    base = str(
        info.get("base_model")
        or config.get("base_model_name_or_path")
        or config.get("_name_or_path")
        or (recipe.model_spec.name if recipe is not None and recipe.model_spec is not None else "")
    )
    return TrainResult(
        metrics={str(k): v for k, v in dict(info.get("metrics") or {}).items()},
        output_dir=folder,
        adapter_path=folder if adapter.is_file() else None,
        model_path=None if adapter.is_file() else folder,
        losses=tuple(float(loss) for loss in info.get("losses") or ()),
        global_step=int(info.get("global_step") or 0),
        recipe=recipe,
        base_model=base,
        data_summary=str(info.get("data_summary") or ""),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
