"""The data stage of ``compile()``: from a recipe's source to the rows the trainer sees.

read → rename columns → detect → convert → check against the recipe → tokenize with the kit's loss masks
→ truncate (counted) → pack (reported). Conversion works on Python rows and tokenization reads them
directly, so nothing passes through an Arrow round trip on the way. ``compile()`` and ``inspect`` share
this stage; neither needs a model for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.prepare import convert_rows
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.data.sources import load_rows
from trl_sft_kit.data.tokenize import TokenizationReport, effective_loss, tokenize_dataset
from trl_sft_kit.errors import RecipeError, SFTKitError
from trl_sft_kit.formats import FormatOptions

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.packing import Overflow, PackingReport
    from trl_sft_kit.recipe import SFTRecipe

__all__ = [
    "SFTCONFIG_MAX_LENGTH",
    "PreparedData",
    "check_data",
    "max_length_of",
    "prepare_training_data",
    "template_eos",
]

SFTCONFIG_MAX_LENGTH = 1024
"""SFTConfig's default ``max_length``, used when the recipe does not set one."""


@attrs.frozen
class PreparedData:
    """The trainer-ready rows and every report of how they were made.

    Attributes:
        dataset: ``input_ids`` and ``labels`` (and ``seq_lengths`` when packed without crossing sequences).
        rows: the canonical rows before tokenization, in order.
        report: reading, detection and conversion.
        tokenization: tokens, tokens carrying loss, truncation.
        packing: the packing report, when the recipe packs.
        eos_token: the chat template's end-of-turn token when it differs from the tokenizer's eos and chat
            data is trained (the model must learn to stop on it), else None.
    """

    dataset: Dataset = attrs.field(repr=False)
    rows: list[dict[str, Any]] = attrs.field(repr=False)
    report: DatasetReport
    tokenization: TokenizationReport
    packing: PackingReport | None = None
    eos_token: str | None = None

    def summary(self) -> str:
        """What the data became: format, rows, tokens carrying loss, truncation and packing."""
        parts = [self.report.summary(), self.tokenization.summary()]
        if self.packing is not None:
            parts.append(f"packing: {self.packing.summary()}")
        return "\n".join(parts)


def max_length_of(recipe: SFTRecipe) -> int | None:
    """The recipe's ``max_length`` (SFTConfig's default 1024 when unset; None means no limit)."""
    value = recipe.training_fields.get("max_length", SFTCONFIG_MAX_LENGTH)
    return None if value is None else int(value)


def prepare_training_data(recipe: SFTRecipe, tokenizer: PreTrainedTokenizerBase) -> PreparedData:
    """Run the whole data stage for ``recipe`` with ``tokenizer`` (template and tokens already applied).

    Raises:
        DatasetError: the data cannot be read, detected or converted (file, row and field named).
        RecipeError: the data does not suit the recipe (loss mode, missing chat template).
    """
    from trl_sft_kit.packing import get_packer, pack

    spec = recipe.dataset_spec
    if spec is None:
        raise RecipeError("no training data: add .dataset(path_or_rows).")
    raw = load_rows(spec)
    options = FormatOptions(text_field=spec.text_field, chat=bool(tokenizer.chat_template))
    prepared = convert_rows(raw, spec, options)
    report = prepared.report
    check_data(recipe, report, tokenizer)
    rows = prepared.rows
    conversational = report.canonical != "prompt_completion" or isinstance(rows[0].get("prompt"), list)
    loss = effective_loss(recipe.loss_spec.mode, report.canonical, conversational=conversational)
    max_length = max_length_of(recipe)
    packer = get_packer(recipe.packing_spec.strategy) if recipe.packing_spec is not None else None
    eos = template_eos(recipe, report, tokenizer)
    if eos is not None:
        tokenizer.eos_token = eos
    tokenized, tokenization = tokenize_dataset(
        rows,
        tokenizer,
        canonical=report.canonical,
        loss=loss,
        turns=recipe.loss_spec.turns,
        max_length=max_length,
        truncate=packer is None,
        on_bad_rows=spec.on_bad_rows,
        row_label=lambda index: raw.full_label(prepared.kept[index]),
    )
    packing = None
    if packer is not None and recipe.packing_spec is not None:
        assert max_length is not None  # validate() refuses packing without max_length
        overflow = cast("Overflow | None", recipe.packing_spec.overflow)
        tokenized, packing = pack(tokenized, packer, max_length=max_length, overflow=overflow)
    return PreparedData(tokenized, rows, report, tokenization, packing, eos)


def template_eos(recipe: SFTRecipe, report: DatasetReport, tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The chat template's end-of-turn token, when chat data is trained and the tokenizer's eos differs.

    A conversation is trained to stop on the token that ends each assistant turn (``<|im_end|>``,
    ``<|eot_id|>``, ``<end_of_turn>``); that token must also be the tokenizer's and the model's eos, or
    generation runs past the end of the turn. ``.tokens(eos=...)`` overrides this.
    """
    if recipe.tokens_spec.eos is not None or report.canonical == "text" or not tokenizer.chat_template:
        return None
    from trl_sft_kit.data.masks import tokenize_conversation

    # Two turns: the first one's end is the template's end of turn, free of anything a template appends
    # after the last message (phi3 writes the eos token there).
    probe = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye"},
    ]
    try:
        masked = tokenize_conversation(tokenizer, probe, require_end_of_turn=False)
    except SFTKitError:
        return None
    controls = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    first_turn = [span for span in masked.spans if span.message_index == 1]
    for span in first_turn:
        for token_id in reversed(masked.input_ids[span.start : span.end]):
            if token_id in controls:
                token = str(tokenizer.convert_ids_to_tokens(token_id))
                return None if token == tokenizer.eos_token else token
    return None


def check_data(recipe: SFTRecipe, report: DatasetReport, tokenizer: PreTrainedTokenizerBase) -> None:
    problems = []
    mode = recipe.loss_spec.mode
    if mode == "completion_only" and report.canonical == "text":
        problems.append(
            f"loss 'completion_only' needs prompt-completion data, but {report.source} is plain text "
            f"({report.format!r}); use loss('all') or give prompt/completion rows."
        )
    if mode == "assistant_only" and report.canonical == "text":
        problems.append(
            f"loss 'assistant_only' needs conversational data, but {report.source} is plain text "
            f"({report.format!r}); use loss('all'), or give chat 'messages' rows."
        )
    if report.canonical == "messages" and not tokenizer.chat_template:
        problems.append(
            f"{report.source} is chat data but the tokenizer has no chat template; choose one with "
            ".chat_template(<name>) (e.g. 'qwen2_5', 'llama3_2'), a .jinja file, or a tokenizer path."
        )
    if problems:
        raise RecipeError(" ".join(problems), problems=tuple(problems))
