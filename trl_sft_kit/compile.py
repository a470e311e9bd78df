"""From a recipe to a real ``trl.SFTConfig`` and a ready ``trl.SFTTrainer``.

A thin mapping: the tokenizer is loaded and given its template and special tokens, the data is prepared
(before the model, so data errors never wait on a model load), then the config, the model, the PEFT and
quantization configs, and the trainer. Failures of the libraries underneath become ``BackendError``.
Nothing the caller passed in is mutated, except a loaded model, which is trained in place.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.checkpoint_record import resume_fields
from trl_sft_kit.console import CurrentStderrHandler
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.errors import BackendError, MissingDependencyError, RecipeError
from trl_sft_kit.run_lock import holding_lock
from trl_sft_kit.specs import ModelSpec, thaw
from trl_sft_kit.tokenizer import MODEL_ENV, apply_tokens, load_failure_message, load_tokenizer

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from trl import SFTConfig, SFTTrainer

    from trl_sft_kit.data.pipeline import PreparedData
    from trl_sft_kit.data.tokenize import TokenizationReport
    from trl_sft_kit.packing import PackingReport
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.result import TrainResult
    from trl_sft_kit.runs import RunPlan

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT_DIR",
    "MODEL_ENV",
    "Compiled",
    "compile_recipe",
    "config_kwargs",
    "fallback_model_note",
    "resolve_model",
]

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_OUTPUT_DIR = "outputs/trl_sft"


@attrs.frozen
class Compiled:
    """A compiled recipe: the real ``SFTConfig``, the ready ``SFTTrainer`` and what the data became."""

    recipe: SFTRecipe
    config: SFTConfig = attrs.field(repr=False)
    trainer: SFTTrainer = attrs.field(repr=False)
    report: DatasetReport
    model_name: str
    tokenization: TokenizationReport
    packing: PackingReport | None = None
    data: PreparedData | None = attrs.field(default=None, eq=False, repr=False)
    """Everything the data stage made: evaluation rows, the mixture's shares, the cache's status."""

    def summary(self) -> str:
        """What the data became: format, rows, tokens carrying loss, truncation and packing."""
        parts = [self.report.summary(), self.tokenization.summary()]
        if self.packing is not None:
            parts.append(f"packing: {self.packing.summary()}")
        return "\n".join(parts)

    def train(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Train, save the adapter (or the full model) and the tokenizer, and return the outcome.

        The output folder also gets a model card (``README.md``), ``recipe.yaml`` (when the recipe can be
        written to a file) and ``run.json`` (metrics, losses, data report and fingerprint, library versions).
        A folder that already holds files is refused unless ``resume`` or ``overwrite`` says what to do (the
        rules are in ``trl_sft_kit.runs``). A first Ctrl-C saves a checkpoint at the end of the step and
        raises ``KeyboardInterrupt``; ``resume=True`` continues from it.

        Args:
            resume: continue from the last complete ``checkpoint-N`` in ``output_dir``, with the same data
                order; the data and seed must be those the run started with.
            overwrite: delete the contents of ``output_dir`` (a folder the kit's own record marks as a run)
                and start again.

        The run holds ``output_dir``'s lock (``trl_sft_kit.run_lock``) from the folder check to the last
        file written; a second run into the same folder meanwhile is refused.

        Raises:
            OutputExistsError: ``output_dir`` holds files and neither flag is set; ``overwrite`` on a
                folder the kit did not write; ``output_dir`` is or holds the base model's folder, or holds
                or lies inside the data.
            RunError: another live run holds ``output_dir``'s lock.
            ResumeError: ``resume`` and no complete checkpoint, or a checkpoint of other data, another seed
                or other recipe fields (``trl_sft_kit.checkpoint_record.RESUME_FIELDS``).
            BackendError: training failed inside TRL / transformers.
            KeyboardInterrupt: Ctrl-C; the message names the checkpoint saved.
        """
        from trl_sft_kit import runs

        output_dir = Path(self.config.output_dir or DEFAULT_OUTPUT_DIR)
        model_path, data_paths = runs.guarded_paths(resolve_model(self.recipe)[0], self.recipe.dataset_specs)
        guard: dict[str, Any] = {"model": model_path, "data": data_paths}
        runs.check_output_dir(output_dir, resume=resume, overwrite=overwrite, **guard)
        fingerprint = runs.data_fingerprint(self.trainer.train_dataset, self.recipe.dataset_specs)
        seeds = {"seed": self.config.seed, "data_seed": self.config.data_seed}
        lora = thaw(attrs.asdict(self.recipe.lora_spec)) if self.recipe.lora_spec is not None else None
        shared = resume_fields(self.config, self.model_name, lora)
        main_process = self.trainer.is_world_process_zero()
        _wait_for_everyone(self.trainer)  # every process checked the lock before the main one takes it
        with holding_lock(output_dir, enabled=main_process):  # one run at a time in the folder
            plan = runs.prepare_output_dir(
                output_dir,
                resume=resume,
                overwrite=overwrite,
                fingerprint=fingerprint,
                seeds=seeds,
                recipe=shared,
                clear=main_process,
                **guard,
            )
            _wait_for_everyone(self.trainer)
            return self._train(plan, fingerprint, {"seeds": seeds, "recipe": shared})

    def _train(self, plan: RunPlan, fingerprint: dict[str, Any], record: dict[str, Any]) -> TrainResult:
        from trl_sft_kit import runs
        from trl_sft_kit.loss_log import first_and_last_losses

        output_dir = plan.output_dir
        main_process = self.trainer.is_world_process_zero()
        if main_process:  # what is trained on, at the head of the training log
            run_logger().info("training on:\n%s", self.summary())
            if plan.checkpoint is not None:
                run_logger().info("resuming from %s", plan.checkpoint)
        record = {"data_fingerprint": fingerprint, **record, "versions": _versions()}
        try:
            with runs.run_callback(self.trainer, record) as watch, first_and_last_losses(self.trainer):
                checkpoint = str(plan.checkpoint) if plan.checkpoint is not None else None
                output = self.trainer.train(resume_from_checkpoint=checkpoint)
        except Exception as exc:
            if isinstance(exc, RecipeError):
                raise
            where = f" while resuming from {str(plan.checkpoint)!r}" if plan.checkpoint is not None else ""
            hint = (
                " A checkpoint can only be resumed by the recipe that saved it (same model, LoRA settings "
                "and optimizer); start again with overwrite=True if the recipe changed."
                if plan.checkpoint is not None
                else ""
            )
            raise BackendError(
                f"training failed inside TRL / transformers{where}: {type(exc).__name__}: {exc}.{hint}"
            ) from exc
        if watch.interrupted and watch.step is not None:
            raise KeyboardInterrupt(runs.interrupted_message(output_dir, watch.step))
        self.trainer.save_model(str(output_dir))
        tokenizer = self.trainer.processing_class
        if tokenizer is not None and self.trainer.is_world_process_zero():  # only the main process writes
            tokenizer.save_pretrained(str(output_dir))
        _wait_for_everyone(self.trainer)  # the others then see what it saved
        adapter = output_dir / "adapter_config.json"
        losses = tuple(
            float(entry["loss"])
            for entry in self.trainer.state.log_history
            if "loss" in entry and "step" in entry
        )
        from trl_sft_kit.card import write_run_files
        from trl_sft_kit.result import TrainResult

        # The last evaluation's metrics (eval_loss, ...) join the training metrics.
        history = self.trainer.state.log_history
        evaluated = next((entry for entry in reversed(history) if "eval_loss" in entry), {})
        result = TrainResult(
            metrics={**{k: v for k, v in evaluated.items() if k.startswith("eval_")}, **output.metrics},
            output_dir=output_dir,
            adapter_path=output_dir if adapter.exists() else None,
            model_path=None if adapter.exists() else output_dir,
            losses=losses,
            global_step=int(output.global_step),
            recipe=self.recipe,
            base_model=self.model_name,
            data_summary=self.summary(),
            model=self.trainer.model,
            tokenizer=tokenizer,
            resumed_from=plan.checkpoint,
            passed_over=plan.passed_over,
        )
        if self.trainer.is_world_process_zero():
            write_run_files(self, result, fingerprint=fingerprint)
            from trl_sft_kit.plots import LOSS_PLOT_FILE, save_loss_plot

            save_loss_plot(self.trainer.state.log_history, output_dir / LOSS_PLOT_FILE)
        return result


def run_logger() -> logging.Logger:
    """The kit's logger: INFO to stderr, prefixed ``[trl_sft_kit]``, unless the application configured it.

    Silence it with ``logging.getLogger("trl_sft_kit").setLevel(logging.WARNING)``.
    """
    logger = logging.getLogger("trl_sft_kit")
    if not logger.handlers:
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("[trl_sft_kit] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def _wait_for_everyone(trainer: SFTTrainer) -> None:
    """A barrier across training processes (nothing to wait for in a single process)."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None:
        accelerator.wait_for_everyone()


def _versions() -> dict[str, str]:
    from trl_sft_kit.card import library_versions

    return library_versions()


# ------------------------------------------------------------------------------------------ mapping


def resolve_model(recipe: SFTRecipe) -> tuple[ModelSpec, str]:
    """The model spec to use and where it came from: the recipe, ``$TRL_SFT_KIT_MODEL``, or the default."""
    if recipe.model_spec is not None:
        return recipe.model_spec, "the recipe"
    from_env = os.environ.get(MODEL_ENV, "").strip()
    if from_env:
        return ModelSpec(from_env), f"${MODEL_ENV}"
    return ModelSpec(DEFAULT_MODEL), "the default"


def fallback_model_note(spec: ModelSpec, origin: str) -> str:
    """The line that names the model trained when the recipe has no ``.model()``: in explain() and the log."""
    return (
        f"no .model() in the recipe: training {spec.name} ({origin}). Choose the model with "
        f".model(...) or ${MODEL_ENV}."
    )


def config_kwargs(
    recipe: SFTRecipe,
    *,
    bf16_capable: bool | None = None,
    accelerator: bool | None = None,
    launched: str | None = None,
) -> dict[str, Any]:
    """The ``SFTConfig`` keyword arguments a recipe produces (pure: imports nothing heavy).

    With evaluation data (``eval=`` on a source) and no ``eval_strategy`` in the recipe, the trainer
    evaluates at the end of every epoch (``eval_strategy="epoch"``); ``.distributed(...)`` adds the
    fields that set the processes up (``trl_sft_kit.distributed.sftconfig_fields``).

    Args:
        recipe: the recipe.
        bf16_capable: whether the device can train in bf16; when known and the recipe sets neither
            ``bf16`` nor ``fp16``, bf16 follows it (TRL's default of bf16=True fails on a CPU).
        accelerator: whether a GPU is present; without one, pinned memory is turned off (it only warns).
        launched: ``"fsdp"`` or ``"deepspeed"`` when ``accelerate launch`` set that up itself
            (``trl_sft_kit.distributed.launched_plugin()``); the recipe's FSDP or DeepSpeed fields are
            then left out.
    """
    kwargs: dict[str, Any] = {"output_dir": DEFAULT_OUTPUT_DIR, "report_to": "none"}
    kwargs.update(thaw(dict(recipe.training_fields)))
    # The kit tokenizes, masks, truncates and packs the data itself (trl_sft_kit.data), so TRL's own
    # preparation is skipped and its loss flags stay at their defaults: the labels already say it all.
    kwargs["dataset_kwargs"] = {**dict(kwargs.get("dataset_kwargs") or {}), "skip_prepare_dataset": True}
    if recipe.packing_spec is not None:
        from trl_sft_kit.packing import get_packer

        packer = get_packer(recipe.packing_spec.strategy)
        kwargs["packing"] = True
        kwargs["packing_strategy"] = getattr(packer, "trl_strategy", packer.name)
        kwargs["eval_packing"] = recipe.packing_spec.eval
        # Rows packed without crossing boundaries carry `seq_lengths`; the padding-free collator turns them
        # into position ids that restart at every sequence, so no attention crosses a boundary.
        kwargs["padding_free"] = not packer.crosses_boundaries
    if recipe.neftune_spec is not None:
        kwargs["neftune_noise_alpha"] = float(recipe.neftune_spec.alpha)
    if recipe.liger_enabled:
        init = dict(kwargs.get("model_init_kwargs") or {})
        init["use_kernels"] = True
        kwargs["model_init_kwargs"] = init
    if recipe.tokens_spec.eos is not None:
        kwargs["eos_token"] = recipe.tokens_spec.eos
    kwargs["dataset_text_field"] = "text"  # canonical text rows always use "text"
    if any(spec.eval is not None for spec in recipe.dataset_specs):
        kwargs.setdefault("eval_strategy", "epoch")
    if recipe.distributed_spec is not None:
        from trl_sft_kit.distributed import sftconfig_fields

        fields = sftconfig_fields(
            recipe.distributed_spec, launched=launched, user_fields=recipe.training_fields
        )
        for key, value in fields.items():
            kwargs.setdefault(key, value)
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; TRL still sets the old name
    # to True, which warns. Passing the new name keeps TRL's default without the warning.
    kwargs.setdefault("activation_checkpointing", True)
    if bf16_capable is not None and "bf16" not in kwargs and "fp16" not in kwargs:
        kwargs["bf16"] = bf16_capable
    if accelerator is False:
        kwargs.setdefault("dataloader_pin_memory", False)
    return kwargs


# ------------------------------------------------------------------------------------------ compile


def _requirement(package: str) -> str:
    """The requirement trl-sft-kit declares for ``package`` (``'trl<2,>=1.10'``), else the bare name."""
    from importlib import metadata

    try:
        declared = metadata.requires("trl-sft-kit") or []
    except metadata.PackageNotFoundError:
        declared = []
    wanted = re.sub(r"[-_.]+", "-", package).lower()
    for line in declared:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if ";" not in line and name and re.sub(r"[-_.]+", "-", name.group(1)).lower() == wanted:
            return line.strip()
    return package


def _require(
    module: str,
    *,
    package: str,
    extra: str | None = None,
    why: str = "training",
    drop: str | None = None,
) -> None:
    """Raise ``MissingDependencyError`` with the fix unless ``module`` is installed; imports nothing.

    Args:
        module: the import name (``bitsandbytes``).
        package: the distribution that provides it (``bitsandbytes``).
        extra: the trl-sft-kit extra that installs it, for an optional package.
        why: what needs it, to start the message (``"quantize()"``).
        drop: the setting that asked for an optional package, named as the other way out.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a module left without a spec
        found = False
    if found:
        return
    if extra is not None:
        fix = f"Install it with pip install 'trl-sft-kit[{extra}]'" + (f", or drop {drop}." if drop else ".")
    else:
        fix = (
            f"Install it with pip install '{_requirement(package)}' (trl-sft-kit depends on it, so "
            "reinstalling trl-sft-kit brings it back too)."
        )
    raise MissingDependencyError(
        f"{why} needs the {package!r} package, which is not installed. {fix}", package=package, extra=extra
    )


def _import_backend(recipe: SFTRecipe | None = None) -> None:
    """Check that training can start, before any tokenizer, data or model is loaded.

    First, without importing anything, that every package training needs is installed, and the optional
    ones the recipe asks for (bitsandbytes for ``quantize()``, kernels for ``liger()``, whose hub kernels
    download at model load, so ``liger()`` offline is refused here); then that the required ones import, in
    dependency order, so that a broken install is named with its fix instead of surfacing as a traceback
    from deep inside TRL; last, that ``liger()`` has a CUDA GPU.

    Raises:
        MissingDependencyError: a package is not installed; the message names what to install (and, for an
            optional one, the setting to drop instead).
        BackendError: a package is installed but fails to import; the message says how to reinstall it.
        RecipeError: ``liger()`` offline (``HF_HUB_OFFLINE``) or on a machine without a CUDA GPU.
    """
    needed = (  # (import name, distribution, attributes that lazy modules only import on first use)
        ("torch", "torch", ()),
        ("transformers", "transformers", ("AutoModelForCausalLM", "AutoTokenizer")),
        ("accelerate", "accelerate", ()),
        ("peft", "peft", ("LoraConfig",)),
        ("datasets", "datasets", ("Dataset",)),
        ("trl", "trl", ("SFTConfig", "SFTTrainer")),
    )
    for module, package, _ in needed:
        _require(module, package=package)
    if recipe is not None and recipe.quantization_spec is not None:
        _require(
            "bitsandbytes",
            package="bitsandbytes",
            extra="quantization",
            why="quantize()",
            drop=".quantize() from the recipe (use_4bit / use_8bit: false in a flat config)",
        )
    if recipe is not None and recipe.liger_enabled:
        # The hub kernels route (use_kernels=True) needs only `kernels`; the kernels themselves are
        # downloaded from the Hub when the model loads, so offline there is nothing to load them from.
        _require(
            "kernels",
            package="kernels",
            extra="liger",
            why="liger()",
            drop=".liger() from the recipe (use_liger_kernel: false in a flat config)",
        )
        from trl_sft_kit.export import hub_offline

        if hub_offline():
            raise RecipeError(
                "liger() loads its kernels from the Hugging Face Hub when the model loads, but offline mode "
                "is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE so the kernels can be downloaded (once; "
                "they are cached), or drop .liger() from the recipe (use_liger_kernel: false in a flat "
                "config)."
            )
    for module, package, attributes in needed:
        try:
            imported = importlib.import_module(module)
            for attribute in attributes:
                getattr(imported, attribute)
        except Exception as exc:
            from importlib import metadata

            try:
                installed = f" (installed: {package} {metadata.version(package)})"
            except Exception:
                installed = ""
            raise BackendError(
                f"{package} is installed{installed} but fails to import: {type(exc).__name__}: {exc}. "
                f"Reinstall it with pip install --force-reinstall '{_requirement(package)}'."
            ) from exc
    if recipe is not None and recipe.liger_enabled:
        import torch

        if not torch.cuda.is_available():
            raise RecipeError(
                "liger() needs a CUDA GPU: Liger's Triton kernels do not run on this machine's CPU. Drop "
                ".liger() from the recipe (use_liger_kernel: false in a flat config), or train on a GPU "
                "machine."
            )


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
    kwargs: dict[str, Any] = dict(init) if isinstance(init, dict) else {}
    kwargs.update(thaw(dict(spec.init_kwargs)))  # .model(..., device_map=..., low_cpu_mem_usage=...)
    kwargs["dtype"] = spec.dtype
    if spec.attn_implementation is not None:
        kwargs["attn_implementation"] = spec.attn_implementation
    quantization = _quantization_config(recipe)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
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
