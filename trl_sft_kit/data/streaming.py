"""Streamed training data: sources read, converted, tokenized and packed while the trainer runs.

``.dataset(source, streaming=True)`` trains from a ``datasets.IterableDataset`` whose rows are made on the
fly: JSON Lines and text files are read line by line (a bad line is named with its file and line), other
files, hub datasets and ``datasets`` objects through ``datasets``' own streaming. The first
``DETECTION_ROWS`` rows decide the format, and the rows that follow are converted with it and tokenized
with the kit's loss masks, exactly as prepared data is; a row that cannot be trained on is skipped or
stops training, as ``on_bad_rows`` says. Several streamed sources are interleaved by weight, from the
recipe's seed, until each has been read to its end at least once (a shorter source starts again).

Packing works on the stream a buffer at a time: ``PACKING_BUFFER`` tokenized sequences are packed
together with the recipe's packer, then the next buffer. A larger buffer packs tighter and holds more rows
in memory.

A stream's length is not known in advance, so the trainer needs ``max_steps``; ``eval=N`` takes the first
``N`` rows of the stream for evaluation (training skips them), and ``eval=<dataset>`` reads a separate
set in full. Streamed data is never cached, and its reports describe the rows read to detect the format.

This module is the stage itself; the sources are read by ``trl_sft_kit.data.stream_sources`` and the
training rows made by ``trl_sft_kit.data.stream_rows``; ``RowStream``, ``open_stream`` and
``PACKING_BUFFER`` stay importable from here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.assembly import concatenate, pack_dataset
from trl_sft_kit.data.mixture import MixtureReport, SourceShare, combine_reports, combine_tokenization
from trl_sft_kit.data.prepare import convert_rows
from trl_sft_kit.data.prepared import PreparedData
from trl_sft_kit.data.settings import data_seed, max_length_of, settings_of
from trl_sft_kit.data.source_conversion import convert_raw, convert_source
from trl_sft_kit.data.source_tokenization import same_index, tokenize_converted
from trl_sft_kit.data.stream_rows import PACKING_BUFFER, StreamedRows, StreamPlan, streamed_dataset
from trl_sft_kit.data.stream_sources import RowStream, open_stream, raw_rows
from trl_sft_kit.data.template_eos import apply_template_eos
from trl_sft_kit.data.tokenize import TokenizationReport, tokenize_dataset
from trl_sft_kit.errors import DataSourceError
from trl_sft_kit.formats import FormatOptions

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings
    from trl_sft_kit.data.sources import RawRows
    from trl_sft_kit.packing import Overflow
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["DETECTION_ROWS", "PACKING_BUFFER", "RowStream", "open_stream", "prepare_streamed_data"]

DETECTION_ROWS = 64
"""Rows read from the start of a stream to detect its format."""


def prepare_streamed_data(
    settings: DataSettings | SupportsDataSettings, tokenizer: PreTrainedTokenizerBase
) -> PreparedData:
    """The data stage for streamed sources: an ``IterableDataset`` and the reports of the rows read first.

    Raises:
        DatasetError: the first rows cannot be read, detected or converted.
        RecipeError: the data does not suit the recipe.
    """
    from trl_sft_kit.packing import get_packer

    settings = settings_of(settings)
    seed = data_seed(settings)
    plans = [_plan(spec, settings, tokenizer) for spec in settings.dataset_specs]
    eos = apply_template_eos(settings, [plan.report for plan in plans], tokenizer)

    packer = get_packer(settings.packing_spec.strategy) if settings.packing_spec is not None else None
    pack_eval = packer is not None and settings.packing_spec is not None and settings.packing_spec.eval
    eval_parts, eval_counts = _evaluation(plans, settings, tokenizer, pack_eval=pack_eval)
    eval_dataset = eval_tokenization = eval_packing = None
    if eval_parts:
        eval_dataset = concatenate([part[0] for part in eval_parts])
        eval_tokenization = combine_tokenization([part[1] for part in eval_parts])
        if pack_eval and packer is not None:
            eval_dataset, eval_packing = pack_dataset(eval_dataset, packer, settings)

    columns = ["input_ids", "labels"]
    if packer is not None and not packer.crosses_boundaries:
        columns.append("seq_lengths")
    overflow = (
        cast("Overflow | None", settings.packing_spec.overflow) if settings.packing_spec is not None else None
    )
    generate = StreamedRows(
        tuple(plans),
        tokenizer,
        turns=settings.loss_spec.turns,
        roles=settings.loss_spec.roles,
        max_length=max_length_of(settings),
        packer=packer,
        overflow=overflow,
        columns=tuple(columns),
        seed=seed,
        chat=bool(tokenizer.chat_template),
    )
    dataset = streamed_dataset(generate)

    head_reports = [
        _tokenize(
            plan,
            plan.head_rows[:DETECTION_ROWS],
            tokenizer,
            settings,
            truncate=packer is None,
            on_bad_rows="skip",
        )[1]
        for plan in plans
    ]
    mixture = None
    if len(plans) > 1 or eval_parts:
        mixture = MixtureReport(
            tuple(
                SourceShare(
                    name=plan.report.source,
                    format=plan.report.format,
                    canonical=plan.canonical,
                    rows=0,
                    taken=0,
                    weight=plan.spec.weight,
                    eval_rows=count,
                    eval_source=where,
                )
                for plan, (count, where) in zip(plans, eval_counts, strict=True)
            ),
            seed=seed,
            streamed=True,
        )
    report = combine_reports([plan.report for plan in plans])
    if mixture is not None:
        report = attrs.evolve(report, notes=(*report.notes, *mixture.summary().splitlines()))
    if packer is not None:
        report = attrs.evolve(
            report,
            notes=(*report.notes, f"streamed packing: {packer.name}, {PACKING_BUFFER} sequences at a time"),
        )
    return PreparedData(
        dataset,
        [row for plan in plans for row in plan.head_rows],
        report,
        combine_tokenization(head_reports),
        None,
        eos,
        eval_dataset=eval_dataset,
        eval_tokenization=eval_tokenization,
        eval_packing=eval_packing,
        mixture=mixture,
        streamed=True,
    )


def _plan(spec: DatasetSpec, settings: DataSettings, tokenizer: PreTrainedTokenizerBase) -> StreamPlan:
    """Open the spec's stream and detect, convert and check its first rows (after those held out)."""
    stream = open_stream(spec)
    skip = int(spec.eval) if spec.holds_out else 0
    raw = raw_rows(stream.name, stream.head(skip + DETECTION_ROWS))
    if not raw.rows:
        raise DataSourceError(f"{stream.name!r} holds no rows.", path=stream.name)
    converted = convert_raw(raw, spec, settings, tokenizer)
    note = (
        f"streamed: the first {len(raw)} rows were read to detect the format; the rest is read, "
        "converted and tokenized while training, so these counts cover those rows only."
    )
    report = attrs.evolve(converted.report, notes=(*converted.report.notes, note))
    return StreamPlan(spec, stream, report, report.canonical, converted.loss, skip, converted.prepared.rows)


def _evaluation(
    plans: list[StreamPlan], settings: DataSettings, tokenizer: PreTrainedTokenizerBase, *, pack_eval: bool
) -> tuple[list[tuple[Dataset, TokenizationReport]], list[tuple[int, str | None]]]:
    """The evaluation rows: the first N rows of a stream, or a separate set read in full.

    Returns:
        The tokenized evaluation part of each source that has one, and for every source its evaluation
        rows and the separate set they came from (None when held out, or when there are none).
    """
    parts: list[tuple[Dataset, TokenizationReport]] = []
    counts: list[tuple[int, str | None]] = []
    for plan in plans:
        spec = plan.spec
        if spec.holds_out:
            raw = raw_rows(plan.stream.name, plan.stream.head(plan.skip))
            options = FormatOptions(text_field=spec.text_field, chat=bool(tokenizer.chat_template))
            prepared = convert_rows(raw, spec, options)
            held = _tokenize(
                plan,
                prepared.rows,
                tokenizer,
                settings,
                truncate=not pack_eval,
                on_bad_rows=spec.on_bad_rows,
                row_label=functools.partial(_label, raw, prepared.kept),
                row_where=functools.partial(_where, raw, prepared.kept),
                special_tokens_in_text=spec.special_tokens_in_text,
            )
            parts.append(held)
            counts.append((len(held[0]), None))
        elif spec.eval is not None:
            eval_spec = attrs.evolve(spec.eval_set(), streaming=False)
            converted = convert_source(eval_spec, settings, tokenizer)
            held = tokenize_converted(
                converted.prepared.rows,
                tokenizer,
                settings,
                converted,
                truncate=not pack_eval,
                index=same_index,
            )
            parts.append(held)
            counts.append((len(held[0]), converted.report.source))
        else:
            counts.append((0, None))
    return parts, counts


def _tokenize(
    plan: StreamPlan,
    rows: Sequence[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    settings: DataSettings,
    *,
    truncate: bool,
    **context: Any,
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize rows of ``plan``'s source with its format and loss; ``context`` names the rows for errors."""
    return tokenize_dataset(
        rows,
        tokenizer,
        canonical=plan.canonical,
        loss=plan.loss,
        turns=settings.loss_spec.turns,
        roles=settings.loss_spec.roles,
        max_length=max_length_of(settings),
        truncate=truncate,
        **context,
    )


def _label(raw: RawRows, kept: Sequence[int], index: int) -> str:
    return raw.full_label(kept[index])


def _where(raw: RawRows, kept: Sequence[int], index: int) -> dict[str, Any]:
    return raw.where(kept[index])
