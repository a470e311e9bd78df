"""``Compiled``: a compiled recipe (the real ``SFTConfig``, the ready ``SFTTrainer``, what the data became)
and its ``train()``, which takes the output folder's lock, resumes or refuses, trains and writes the run's
files; the kit's logger ``run_logger``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.checkpoint_record import resume_fields
from trl_sft_kit.compile.mapping import DEFAULT_OUTPUT_DIR, resolve_model
from trl_sft_kit.console import CurrentStderrHandler
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.errors import BackendError, RecipeError
from trl_sft_kit.run_lock import holding_lock
from trl_sft_kit.specs import thaw

if TYPE_CHECKING:
    from trl import SFTConfig, SFTTrainer

    from trl_sft_kit.data.pipeline import PreparedData
    from trl_sft_kit.data.tokenize import TokenizationReport
    from trl_sft_kit.packing import PackingReport
    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.result import TrainResult
    from trl_sft_kit.runs import RunPlan

__all__ = ["Compiled", "run_logger"]


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
        read = self.data.sources if self.data is not None and self.data.sources else None
        fingerprint = runs.data_fingerprint(self.trainer.train_dataset, self.recipe.dataset_specs, read)
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
