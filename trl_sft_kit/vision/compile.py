"""``compile()`` for a vision-language model, the TRL way.

A model is a vision-language model when its config has a ``vision_config`` (LLaVA, Qwen2-VL, Idefics3 /
SmolVLM, Gemma 3, ...). It then loads with ``AutoModelForImageTextToText``, its processor
(``AutoProcessor``) is the processing class, the rows keep their images (``trl_sft_kit.vision.data``) and
``VisionCollator`` makes the batches: TRL's ``DataCollatorForVisionLanguageModeling`` (which renders and
processes the images per batch), with image tokens and padding never trained. ``loss("assistant_only")``
uses the template's ``{% generation %}`` markers, as TRL's vision training templates in
``trl/chat_templates`` have them. LoRA's ``"all-linear"`` targets the language model's projections only, so
the vision tower stays frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.mixture import hold_out_rows
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.data.settings import data_seed
from trl_sft_kit.data.tokenize import TokenizationReport
from trl_sft_kit.errors import BackendError, RecipeError
from trl_sft_kit.specs import DatasetSpec, ModelSpec, thaw
from trl_sft_kit.vision.data import prepare_vision_data, vision_dataset

if TYPE_CHECKING:
    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["LANGUAGE_MODEL_TARGETS", "VisionCollator", "compile_vision", "is_vision_model", "vision_tokens"]

LANGUAGE_MODEL_TARGETS = (
    r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
)
"""The LoRA targets of ``"all-linear"`` for a vision-language model: the language model's projections."""

IGNORE_INDEX = -100


def is_vision_model(spec: ModelSpec) -> bool:
    """Whether the model's config describes a vision-language model (it has a ``vision_config``)."""
    if spec.is_loaded:
        return getattr(spec.source.config, "vision_config", None) is not None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            spec.source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except Exception:  # the text path reports a model that cannot be loaded, with its own message
        return False
    return getattr(config, "vision_config", None) is not None


@attrs.define
class VisionCollator:
    """TRL's vision collator, then image tokens (and padding) out of the loss: they are inputs, not text.

    ``image_token_id`` is the placeholder each image expands into; ``media_token_ids`` are every token that
    stands for an image (that one, and the tokens around it: ``<fake_token_around_image>``,
    ``<global-img>``, ``<|vision_start|>``, ...), none of which is ever trained.
    """

    inner: Any
    image_token_id: int | None
    media_token_ids: tuple[int, ...] = ()

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = self.inner([dict(example) for example in examples])
        if self.media_token_ids:
            media = torch.isin(batch["input_ids"], torch.tensor(self.media_token_ids))
            batch["labels"][media] = IGNORE_INDEX
        return batch


_MEDIA_TOKEN_ATTRIBUTES = (
    "image_token",
    "video_token",
    "fake_image_token",
    "global_image_tag",
    "boi_token",
    "eoi_token",
    "vision_start_token",
    "vision_end_token",
)
_MEDIA_TOKEN_LITERALS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def _token_id(tokenizer: Any, token: Any) -> int | None:
    if not isinstance(token, str) or not token:
        return None
    found = tokenizer.convert_tokens_to_ids(token)
    return found if isinstance(found, int) and found != tokenizer.unk_token_id else None


def vision_tokens(processor: Any) -> int | None:
    """The id of the processor's image placeholder token (``<image>``, ``<|image_pad|>``), if it has one."""
    return _token_id(processor.tokenizer, getattr(processor, "image_token", None))


def media_tokens(processor: Any) -> tuple[int, ...]:
    """Every token id of the processor that stands for an image or video, or marks one's start or end."""
    tokenizer = processor.tokenizer
    vocab = tokenizer.get_vocab()
    names = [getattr(processor, name, None) for name in _MEDIA_TOKEN_ATTRIBUTES]
    names += [literal for literal in _MEDIA_TOKEN_LITERALS if literal in vocab]
    return tuple(sorted({found for name in names if (found := _token_id(tokenizer, name)) is not None}))


def refuse_what_vision_cannot_do(recipe: SFTRecipe) -> None:
    problems = []
    if recipe.packing_spec is not None:
        problems.append(
            "packing() with vision rows: a packed row would hold the image tokens of several rows, while the "
            "vision collator processes each row's images with that row alone, so images and their tokens "
            "would no longer match (TRL refuses it too). Remove .packing(); rows are padded per batch."
        )
    for spec in recipe.dataset_specs:
        if spec.streaming:
            problems.append(
                "streaming=True with a vision-language model is not supported yet; read it whole."
            )
    if recipe.more_datasets:
        problems.append(
            "mixtures (mix()) with a vision-language model are not supported yet; use one source."
        )
    if recipe.loss_spec.mode == "completion_only":
        problems.append(
            "loss('completion_only') needs prompt-completion rows; vision rows are conversations: use "
            "loss('assistant_only') or loss('all')."
        )
    if recipe.loss_spec.turns != "all":
        problems.append("loss(..., turns='last') is not supported for vision rows yet; use turns='all'.")
    if problems:
        raise RecipeError(" ".join(problems), problems=tuple(problems))


def load_processor(spec: ModelSpec, recipe: SFTRecipe) -> Any:
    from transformers import AutoProcessor

    source = spec.tokenizer or (spec.source if not spec.is_loaded else None)
    if source is None:
        raise RecipeError(
            "a loaded vision-language model needs its processor: pass .model(model, tokenizer=<path or "
            "hub id of the processor>)."
        )
    try:
        processor = AutoProcessor.from_pretrained(
            source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except Exception as exc:
        raise BackendError(
            f"the processor of {source!r} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    template = recipe.tokens_spec.chat_template
    if template is not None:
        from trl_sft_kit.tokenizer import read_chat_template

        processor.chat_template = read_chat_template(template)
    if not getattr(processor, "chat_template", None):
        raise RecipeError(
            f"the processor of {source!r} has no chat template; name one with .tokens(chat_template=...)."
        )
    return processor


def vision_collator(recipe: SFTRecipe, processor: Any, max_length: int | None) -> VisionCollator:
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    assistant_only = recipe.loss_spec.mode == "assistant_only"
    if assistant_only and "generation" not in processor.chat_template:
        raise RecipeError(
            "loss('assistant_only') needs a chat template that marks the assistant's tokens with "
            "{% generation %}; this processor's does not. Use a training template bundled with TRL "
            "(.tokens(chat_template='llava_next_training'), 'qwen2_5_vl_training', 'smolvlm_training', ...)."
        )
    inner = DataCollatorForVisionLanguageModeling(
        processor=processor, max_length=max_length, assistant_only_loss=assistant_only
    )
    return VisionCollator(inner, vision_tokens(processor), media_tokens(processor))


def collated_rows(rows: list[dict[str, Any]], collator: VisionCollator) -> list[tuple[list[int], list[int]]]:
    """Each row's ``input_ids`` and ``labels`` as the collator makes them for a batch of that row alone."""
    out = []
    for row in rows:
        batch = collator([row])
        keep = batch["attention_mask"][0].bool()
        out.append((batch["input_ids"][0][keep].tolist(), batch["labels"][0][keep].tolist()))
    return out


def tokenization_report(
    collated: list[tuple[list[int], list[int]]], loss: str, max_length: int | None
) -> TokenizationReport:
    """Tokens and tokens carrying loss of the collated rows (image tokens count as tokens, never trained)."""
    return TokenizationReport(
        loss=loss,
        rows_in=len(collated),
        rows_out=len(collated),
        tokens=sum(len(ids) for ids, _ in collated),
        trained_tokens=sum(sum(1 for label in labels if label != IGNORE_INDEX) for _, labels in collated),
        max_length=max_length,
    )


def _lora(recipe: SFTRecipe) -> Any:
    spec = recipe.lora_spec
    if spec is None:
        return None
    from peft import LoraConfig

    target: Any = spec.target_modules
    if target == "all-linear":
        target = LANGUAGE_MODEL_TARGETS
    elif not isinstance(target, str):
        target = list(target)
    try:
        return LoraConfig(
            r=spec.r,
            lora_alpha=spec.alpha,  # type: ignore[arg-type]
            lora_dropout=spec.dropout,
            target_modules=target,
            task_type="CAUSAL_LM",
            **thaw(dict(spec.options)),
        )
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"peft refused the LoRA settings: {exc}") from exc


def _model(spec: ModelSpec, recipe: SFTRecipe) -> Any:
    if spec.is_loaded:
        return spec.source
    from transformers import AutoModelForImageTextToText

    from trl_sft_kit.compile.build import model_load_kwargs

    kwargs = model_load_kwargs(spec, recipe)
    try:
        return AutoModelForImageTextToText.from_pretrained(
            spec.source, revision=spec.revision, trust_remote_code=spec.trust_remote_code, **kwargs
        )
    except Exception as exc:
        raise BackendError(
            f"the vision-language model {spec.source!r} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc


def _evaluation_rows(
    spec: DatasetSpec, rows: list[dict[str, Any]], report: DatasetReport, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], DatasetReport]:
    """The training rows, the evaluation rows (held out by ``seed`` as for text data, or read from the
    separate set ``eval=`` names, with the source's options) and the report with a note of them."""
    if spec.eval is None:
        return rows, [], report
    if spec.holds_out:
        train_at, eval_at = hold_out_rows(len(rows), spec.eval, seed, source=report.source)
        held = [rows[at] for at in eval_at]
        note = f"{len(held)} of the {len(rows)} rows held out for evaluation (seed {seed})"
        return [rows[at] for at in train_at], held, attrs.evolve(report, notes=(*report.notes, note))
    held, eval_report = prepare_vision_data(spec.eval_set())
    note = f"evaluation: {len(held)} rows of {eval_report.source} ({eval_report.notes[0]})"
    if eval_report.skipped:
        note += f", {len(eval_report.skipped)} bad rows skipped"
    return rows, held, attrs.evolve(report, notes=(*report.notes, note))


def compile_vision(recipe: SFTRecipe, model_spec: ModelSpec) -> Compiled:
    """The ``Compiled`` of a recipe whose model is a vision-language model (see the module docstring).

    Raises:
        RecipeError: what vision rows cannot do yet (packing, streaming, mixtures, completion-only
            loss), or a template without generation markers for assistant-only loss.
        RowError: a bad vision row (file, row, field), unless skipped under ``on_bad_rows="skip"``.
        BackendError: the processor or model cannot be loaded, or TRL cannot build the trainer.
    """
    import torch

    from trl_sft_kit.compile import Compiled, _build_config, config_kwargs

    refuse_what_vision_cannot_do(recipe)
    (spec,) = recipe.dataset_specs
    processor = load_processor(model_spec, recipe)
    rows, report = prepare_vision_data(spec)
    rows, eval_rows, report = _evaluation_rows(spec, rows, report, data_seed(recipe.data_settings()))
    kwargs = config_kwargs(
        recipe,
        bf16_capable=bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        accelerator=torch.cuda.is_available(),
    )
    kwargs["remove_unused_columns"] = False
    config = _build_config(kwargs)
    collator = vision_collator(recipe, processor, config.max_length)
    loss = "assistant_only" if recipe.loss_spec.mode == "assistant_only" else "all"
    tokenization = tokenization_report(collated_rows(rows, collator), loss, config.max_length)
    model = _model(model_spec, recipe)
    from trl import SFTTrainer

    try:
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=vision_dataset(rows),
            eval_dataset=vision_dataset(eval_rows) if eval_rows else None,
            processing_class=processor,
            data_collator=collator,
            peft_config=_lora(recipe),
        )
    except RecipeError:
        raise
    except Exception as exc:
        raise BackendError(f"TRL could not build the trainer: {type(exc).__name__}: {exc}") from exc
    name = model_spec.name
    return Compiled(
        recipe=recipe,
        config=config,
        trainer=trainer,
        report=report,
        model_name=name,
        tokenization=tokenization,
    )
