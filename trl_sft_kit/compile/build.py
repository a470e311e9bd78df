"""``compile_recipe``: validate, check the packages, load the tokenizer, prepare the data (before the
model, so data errors never wait on a model load), then the ``SFTConfig``, the model with its
quantization, the LoRA config and the ``SFTTrainer``. Failures of the libraries underneath become
``BackendError``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.compile.compiled import Compiled, run_logger
from trl_sft_kit.compile.mapping import config_kwargs, fallback_model_note, resolve_model
from trl_sft_kit.compile.requirements import _import_backend
from trl_sft_kit.errors import BackendError, RecipeError
from trl_sft_kit.specs import ModelSpec, thaw
from trl_sft_kit.tokenizer import apply_tokens, load_failure_message, load_tokenizer

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from trl import SFTConfig, SFTTrainer

    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["compile_recipe"]


def compile_recipe(recipe: SFTRecipe) -> Compiled:
    """Validate the recipe and build the ``SFTConfig`` and ``SFTTrainer`` it describes.

    Raises:
        RecipeError: the recipe is inconsistent, or inconsistent with its data, or liger() has no CUDA GPU.
        DatasetError: the data cannot be read or converted (see ``trl_sft_kit.errors``).
        MissingDependencyError: a package training needs, or an optional one the recipe asks for, is not
            installed (found before anything loads).
        BackendError: a package fails to import, the model or tokenizer cannot be loaded, or TRL refuses
            the configuration.
    """
    recipe.validate()
    _import_backend(recipe)  # packages installed and importable, a GPU for liger(): before anything loads
    from trl_sft_kit import distributed

    distributed.require_backend(recipe.distributed_spec)
    import torch

    model_spec, model_origin = resolve_model(recipe)
    if recipe.model_spec is None:
        run_logger().warning("%s", fallback_model_note(model_spec, model_origin))
    from trl_sft_kit.vision.compile import compile_vision, is_vision_model

    if is_vision_model(model_spec):  # images in the rows, the processor, TRL's vision collator
        return compile_vision(recipe, model_spec)
    tokenizer = load_tokenizer(model_spec, model_origin)
    added_tokens = apply_tokens(tokenizer, recipe)
    from trl_sft_kit.data.pipeline import prepare_training_data

    with _main_process_first(recipe, cuda=torch.cuda.is_available()):
        data = prepare_training_data(recipe, tokenizer, use_cache=True)
    # The canonical rows served tokenization; training needs the tokens only, so they go now rather than
    # live through the run (about 2.5 KB a conversation: 2.4 GiB for a million).
    data = attrs.evolve(data, rows=[])

    bf16_capable = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    accelerator = bool(
        torch.cuda.is_available()
        or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    )
    kwargs = config_kwargs(
        recipe, bf16_capable=bf16_capable, accelerator=accelerator, launched=distributed.launched_plugin()
    )
    if not accelerator and distributed.world_size() > 1:
        kwargs.setdefault("use_cpu", True)  # several CPU processes: accelerate then joins them with gloo
    if data.eos_token is not None:
        kwargs["eos_token"] = data.eos_token
    config = _build_config(kwargs)
    model = _load_model(model_spec, model_origin, recipe, config)
    if added_tokens:
        model.resize_token_embeddings(len(tokenizer))
    trainer = _build_trainer(
        recipe, model, tokenizer, data.dataset, config, added_tokens, eval_dataset=data.eval_dataset
    )
    return Compiled(
        recipe=recipe,
        config=config,
        trainer=trainer,
        report=data.report,
        model_name=model_spec.name,
        tokenization=data.tokenization,
        packing=data.packing,
        data=data,
    )


def _main_process_first(recipe: SFTRecipe, *, cuda: bool) -> contextlib.AbstractContextManager[Any]:
    """In a multi-process run whose data is cached, the main process prepares (and stores) it first.

    The other processes then load it from the cache instead of preparing it again; without the cache,
    or in one process, every process prepares its own data at once.
    """
    from trl_sft_kit import distributed
    from trl_sft_kit.data.cache import enabled_for

    if distributed.world_size() <= 1 or not enabled_for(recipe):
        return contextlib.nullcontext()
    from accelerate import PartialState

    return PartialState(cpu=not cuda).main_process_first()


def _build_config(kwargs: dict[str, Any]) -> SFTConfig:
    import warnings

    from trl import SFTConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return SFTConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"TRL refused the training settings: {exc}") from exc


# ------------------------------------------------------------------------------------------ model


def _quantization_config(recipe: SFTRecipe) -> Any:
    spec = recipe.quantization_spec
    if spec is None:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if spec.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if spec.compute_dtype == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        compute = torch.bfloat16 if cuda_bf16 else torch.float32
    else:
        compute = getattr(torch, spec.compute_dtype)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=spec.quant_type,
        bnb_4bit_use_double_quant=spec.double_quant,
        bnb_4bit_compute_dtype=compute,
    )


def model_load_kwargs(
    spec: ModelSpec, recipe: SFTRecipe, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``from_pretrained`` keyword arguments of the model a recipe loads (text or vision-language):
    ``base`` (SFTConfig's ``model_init_kwargs``), then ``.model(..., **kwargs)``, the dtype, the attention
    implementation and the quantization config."""
    kwargs = dict(base or {})
    kwargs.update(thaw(dict(spec.init_kwargs)))  # .model(..., device_map=..., low_cpu_mem_usage=...)
    kwargs["dtype"] = spec.dtype
    if spec.attn_implementation is not None:
        kwargs["attn_implementation"] = spec.attn_implementation
    quantization = _quantization_config(recipe)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    return kwargs


def _load_model(spec: ModelSpec, origin: str, recipe: SFTRecipe, config: SFTConfig) -> PreTrainedModel:
    if spec.is_loaded:
        if recipe.quantization_spec is not None:
            raise RecipeError(
                "quantize() cannot apply to a model that is already loaded; "
                "pass its path to .model() instead, "
                "or load it quantized yourself."
            )
        loaded: PreTrainedModel = spec.source
        return loaded
    from transformers import AutoModelForCausalLM

    init = config.model_init_kwargs
    kwargs = model_load_kwargs(spec, recipe, dict(init) if isinstance(init, dict) else {})
    try:
        return AutoModelForCausalLM.from_pretrained(
            spec.source, revision=spec.revision, trust_remote_code=spec.trust_remote_code, **kwargs
        )
    except Exception as exc:
        raise BackendError(load_failure_message("model", spec.source, origin, exc)) from exc


def _lora_config(recipe: SFTRecipe, added_tokens: list[int]) -> Any:
    spec = recipe.lora_spec
    if spec is None:
        return None
    from peft import LoraConfig

    options = thaw(dict(spec.options))
    if added_tokens:
        options.setdefault("trainable_token_indices", {"embed_tokens": added_tokens})
    target = spec.target_modules if isinstance(spec.target_modules, str) else list(spec.target_modules)
    try:
        return LoraConfig(
            r=spec.r,
            lora_alpha=int(spec.alpha) if float(spec.alpha).is_integer() else spec.alpha,  # type: ignore[arg-type]
            lora_dropout=spec.dropout,
            target_modules=target,
            task_type="CAUSAL_LM",
            **options,
        )
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"peft refused the LoRA settings: {exc}") from exc


def _build_trainer(
    recipe: SFTRecipe,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset | IterableDataset,
    config: SFTConfig,
    added_tokens: list[int],
    eval_dataset: Dataset | None = None,
) -> SFTTrainer:
    from trl import SFTTrainer

    try:
        return SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=_lora_config(recipe, added_tokens),
        )
    except RecipeError:
        raise
    except Exception as exc:
        raise BackendError(f"TRL could not build the trainer: {type(exc).__name__}: {exc}") from exc
