"""``compile()`` for a vision-language model, the TRL way.

A model is a vision-language model when its config has a ``vision_config`` (LLaVA, Qwen2-VL, Idefics3 /
SmolVLM, Gemma 3, ...). It then loads with ``AutoModelForImageTextToText``, its processor
(``AutoProcessor``) is the processing class, the rows keep their images (``trl_sft_kit.vision.data``) and
``VisionCollator`` makes the batches: TRL's ``DataCollatorForVisionLanguageModeling`` (which renders and
processes the images per batch), with image tokens and padding never trained. ``loss("auto")`` and
``loss("assistant_only")`` train the assistant's turns (or the ``roles`` / ``turns`` chosen) by the kit's own
masks (``trl_sft_kit.vision.masks``) on whatever template the processor has, ``{% generation %}`` markers
or not. Every row is collated once at compile time: rows too long for ``max_length`` are truncated and
counted, and a row whose image tokens would be cut is refused (or skipped and counted). LoRA's
``"all-linear"`` targets the language model's projections only, so the vision tower stays frozen.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.mixture import hold_out_rows
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.settings import data_seed
from trl_sft_kit.data.tokenize import TokenizationReport
from trl_sft_kit.errors import BackendError, RecipeError, RowError
from trl_sft_kit.specs import DatasetSpec, ModelSpec, thaw
from trl_sft_kit.vision.data import ROW_PLACE, prepare_vision_data, row_label, vision_dataset
from trl_sft_kit.vision.masks import ConversationMasks

if TYPE_CHECKING:
    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.recipe import SFTRecipe

__all__ = [
    "LANGUAGE_MODEL_TARGETS",
    "Collated",
    "VisionCollator",
    "collate_rows",
    "compile_vision",
    "is_vision_model",
    "vision_loss",
    "vision_tokens",
]

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
    """TRL's vision collator, the kit's masks, then image tokens (and padding) out of the loss.

    ``image_token_id`` is the placeholder each image expands into; ``media_token_ids`` are every token that
    stands for an image (that one, and the tokens around it: ``<fake_token_around_image>``,
    ``<global-img>``, ``<|vision_start|>``, ...), none of which is ever trained. With ``masks`` each row's
    labels are the kit's (its assistant turns, or the roles and turns chosen); without, every text token.
    """

    inner: Any
    image_token_id: int | None
    media_token_ids: tuple[int, ...] = ()
    masks: ConversationMasks | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = self.inner(
            [{key: value for key, value in example.items() if key != ROW_PLACE} for example in examples]
        )
        if self.masks is not None:
            for index, example in enumerate(examples):
                positions = batch["attention_mask"][index].nonzero().flatten()
                ids = batch["input_ids"][index][positions].tolist()
                labels = self.masks.labels(example["messages"], ids, example.get(ROW_PLACE))
                row = torch.full_like(batch["labels"][index], IGNORE_INDEX)
                row[positions] = torch.tensor(labels, dtype=row.dtype)
                batch["labels"][index] = row
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


def vision_loss(recipe: SFTRecipe, canonical: str = "messages") -> str:
    """What a vision recipe trains on rows of kind ``canonical``, as for text rows (``effective_loss``):
    ``"assistant_only"`` for conversations under ``auto``, ``"completion_only"`` for prompt-completion rows
    (their prompt turns are marked not to train), or ``"all"``: every text token.

    Raises:
        RecipeError: ``loss("completion_only")`` on conversations.
    """
    from trl_sft_kit.data.loss_modes import effective_loss

    return effective_loss(recipe.loss_spec.mode, canonical)


def vision_collator(
    recipe: SFTRecipe, processor: Any, max_length: int | None, canonical: str = "messages"
) -> VisionCollator:
    """The collator of a vision recipe: TRL's, cutting rows at ``max_length``, with the kit's masks unless
    the recipe trains every token."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    inner = DataCollatorForVisionLanguageModeling(processor=processor, max_length=max_length)
    media = media_tokens(processor)
    masks = None
    if vision_loss(recipe, canonical) != "all":
        spec = recipe.loss_spec
        turns: Any = spec.turns
        template = processor.chat_template
        masks = ConversationMasks(processor.tokenizer, template, frozenset(media), turns, spec.roles)
    return VisionCollator(inner, vision_tokens(processor), media, masks)


@attrs.frozen
class Collated:
    """Rows collated one at a time as training will, with what ``max_length`` and the masks did to them.

    Attributes:
        rows: the rows kept, in order.
        tokens: each kept row's ``input_ids`` and ``labels`` whole (training cuts them at ``max_length``;
            ``inspect()`` shows where).
        report: tokens and tokens carrying loss after the cut, rows truncated and dropped, rows skipped.
    """

    rows: list[dict[str, Any]]
    tokens: list[tuple[list[int], list[int]]]
    report: TokenizationReport


def collate_rows(
    rows: list[dict[str, Any]],
    collator: VisionCollator,
    *,
    loss: str,
    max_length: int | None,
    on_bad_rows: str = "error",
    roles: tuple[str, ...] = ("assistant",),
    turns: str = "all",
) -> Collated:
    """Collate each row alone, uncut, and count what ``max_length`` cuts, as the text path does.

    A row longer than ``max_length`` is truncated at its end (by TRL's collator in training, counted here);
    a row whose image tokens run past ``max_length`` would lose part of an image, and a row left with no
    token carrying loss trains nothing: the first is a ``RowError``, the second dropped and counted.

    Raises:
        RowError: a row whose masks cannot be made or whose image tokens would be cut, naming its file,
            row and field, unless ``on_bad_rows="skip"`` (then skipped and counted).
    """
    import dataclasses

    uncut = attrs.evolve(collator, inner=dataclasses.replace(collator.inner, max_length=None))
    media = set(collator.media_token_ids)
    kept: list[dict[str, Any]] = []
    tokens: list[tuple[list[int], list[int]]] = []
    skipped: list[SkippedRow] = []
    truncated = cut = no_loss = all_cut = 0
    totals = [0, 0]  # tokens, tokens carrying loss: after the cut
    for row in rows:
        try:
            ids, labels = _collate_one(uncut, row)
            if max_length is not None and any(token in media for token in ids[max_length:]):
                start = next(at for at, token in enumerate(ids) if token in media)
                raise RowError(
                    f"the row is {len(ids)} tokens and its image tokens (from token {start}) run past "
                    f"max_length {max_length}, which would cut an image off its tokens. Raise "
                    ".training(max_length=...), or shorten the row.",
                    field="images",
                    **row.get(ROW_PLACE, {}),
                )
        except RowError as exc:
            if on_bad_rows != "skip":
                raise
            skipped.append(SkippedRow(row_label(row), exc.field, exc.reason))
            continue
        trained_before = sum(label != IGNORE_INDEX for label in labels)
        length = len(ids) if max_length is None else min(len(ids), max_length)
        if length < len(ids):
            truncated += 1
            cut += len(ids) - length
        trained = sum(label != IGNORE_INDEX for label in labels[:length])
        if not trained:
            no_loss += trained_before == 0
            all_cut += trained_before > 0
            continue
        kept.append(row)
        tokens.append((ids, labels))
        totals[0] += length
        totals[1] += trained
    if not kept:
        first = f"; first skipped: {skipped[0]}" if skipped else ""
        raise RowError(
            f"no row is left to train on: {len(skipped)} skipped, {no_loss} without a token carrying loss, "
            f"{all_cut} with every such token cut by max_length {max_length}{first}."
        )
    report = TokenizationReport(
        loss=loss,
        rows_in=len(rows),
        rows_out=len(kept),
        tokens=totals[0],
        trained_tokens=totals[1],
        max_length=max_length,
        rows_truncated=truncated,
        tokens_truncated=cut,
        rows_without_trained_tokens=no_loss,
        rows_all_trained_tokens_cut=all_cut,
        skipped=tuple(skipped),
        roles=roles,
        turns=turns,
    )
    return Collated(kept, tokens, report)


def _collate_one(collator: VisionCollator, row: dict[str, Any]) -> tuple[list[int], list[int]]:
    batch = collator([row])
    keep = batch["attention_mask"][0].bool()
    return batch["input_ids"][0][keep].tolist(), batch["labels"][0][keep].tolist()


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
        RecipeError: what vision rows cannot do yet (packing, streaming, mixtures), or
            ``loss("completion_only")`` on conversations.
        RowError: a bad vision row (file, row, field: an image that cannot be read, a turn the masks
            cannot find, image tokens past ``max_length``), unless skipped under ``on_bad_rows="skip"``.
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
    collator = vision_collator(recipe, processor, config.max_length, report.canonical)
    collate = functools.partial(
        collate_rows,
        collator=collator,
        loss=vision_loss(recipe, report.canonical),
        max_length=config.max_length,
        on_bad_rows=spec.on_bad_rows,
        roles=recipe.loss_spec.roles,
        turns=recipe.loss_spec.turns,
    )
    train = collate(rows)
    if eval_rows:
        held = collate(eval_rows)
        eval_rows = held.rows
        counts = held.report
        if counts.rows_out != counts.rows_in or counts.rows_truncated:
            note = (
                f"evaluation rows: {counts.rows_out} of {counts.rows_in} kept "
                f"({len(counts.skipped)} skipped, "
                f"{counts.rows_without_trained_tokens + counts.rows_all_trained_tokens_cut} without a token "
                f"carrying loss), {counts.rows_truncated} truncated at max_length {counts.max_length}"
            )
            report = attrs.evolve(report, notes=(*report.notes, note))
    model = _model(model_spec, recipe)
    from trl import SFTTrainer

    try:
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=vision_dataset(train.rows),
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
        tokenization=train.report,
    )
