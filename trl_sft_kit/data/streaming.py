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
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.file_kinds import data_files, not_regular
from trl_sft_kit.data.masks import IGNORE_INDEX
from trl_sft_kit.data.media import handle_streamed_row
from trl_sft_kit.data.mixture import MixtureReport, SourceShare, combine_reports, combine_tokenization
from trl_sft_kit.data.prepare import _as_object, convert_rows
from trl_sft_kit.data.settings import settings_of
from trl_sft_kit.data.sources import (
    SUPPORTED_SUFFIXES,
    RawRows,
    UnreadableRow,
    _looks_like_path,
    csv_records,
)
from trl_sft_kit.data.tokenize import TokenizationReport, effective_loss, tokenize_dataset, tokenize_row
from trl_sft_kit.errors import DataSourceError, RowError
from trl_sft_kit.formats import FormatOptions, RowExcludedError, convert_row, format_registration, json_text
from trl_sft_kit.specs import InlineRows

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.pipeline import PreparedData
    from trl_sft_kit.data.report import DatasetReport
    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings
    from trl_sft_kit.packing import Overflow, Packer
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["DETECTION_ROWS", "PACKING_BUFFER", "RowStream", "open_stream", "prepare_streamed_data"]

PACKING_BUFFER = 1000
"""Tokenized sequences packed together at a time on a stream."""

DETECTION_ROWS = 64
"""Rows read from the start of a stream to detect its format."""

Row = tuple[str, Any]
"""A raw row with where it came from (``data.jsonl, line 12``)."""


@attrs.frozen
class RowStream:
    """A source that can be read from its start any number of times, one raw row at a time."""

    name: str
    read: Callable[[], Iterator[Row]] = attrs.field(repr=False)

    def head(self, count: int) -> list[Row]:
        """The first ``count`` rows."""
        return list(itertools.islice(self.read(), count))


def open_stream(spec: DatasetSpec) -> RowStream:
    """A lazy reader of the spec's source.

    Raises:
        DataSourceError: a missing path, a folder without data files, an unreadable hub id.
    """
    source = spec.source
    if isinstance(source, InlineRows):
        rows = source.to_list()
        return RowStream(
            "inline rows", lambda: ((f"inline rows, row {i}", row) for i, row in enumerate(rows))
        )
    if isinstance(source, str):
        path = Path(source).expanduser()
        problem = not_regular(path)
        if problem is not None:
            raise DataSourceError(problem, path=source)
        if path.is_dir():
            files, _ = data_files(path, SUPPORTED_SUFFIXES)  # files left out are logged there
            if not files:
                raise DataSourceError(
                    f"folder {str(path)!r} holds no data files ({', '.join(SUPPORTED_SUFFIXES)}).",
                    path=str(path),
                )
            return RowStream(
                str(path), lambda: itertools.chain.from_iterable(_read_file(file, spec) for file in files)
            )
        if path.is_file():
            return RowStream(str(path), lambda: _read_file(path, spec))
        if _looks_like_path(source):
            raise DataSourceError(f"dataset path {source!r} does not exist.", path=source)
        return _hub_stream(source, spec)
    return _object_stream(source, spec, type(source).__name__)


def _read_file(path: Path, spec: DatasetSpec) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".txt"):
        yield from _read_lines(path, spec)
        return
    if suffix == ".csv":  # as the strings written, as sources reads it; not through datasets' pandas
        for line, row in csv_records(_utf8_lines(path), str(path), skip=spec.on_bad_rows == "skip"):
            yield f"{path}, line {line}", row
        return
    import datasets

    builder = {".json": "json", ".parquet": "parquet"}.get(suffix)
    if builder is None:
        raise DataSourceError(
            f"{str(path)!r} is a {suffix or 'suffix-less'} file; the kit streams "
            f"{', '.join(SUPPORTED_SUFFIXES)}.",
            path=str(path),
        )
    table = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True)
    for index, row in enumerate(table):
        yield f"{path}, row {index}", row


def _utf8_lines(path: Path) -> Iterator[str]:
    """The file's lines with their endings (what the csv module reads), each checked to be UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RowError(
                    "the line is not UTF-8; re-save the file as UTF-8.", path=str(path), line=number
                ) from None
            yield line.removeprefix("\ufeff") if number == 1 else line


def _read_lines(path: Path, spec: DatasetSpec) -> Iterator[Row]:
    """JSON Lines or text, one line at a time; lines end at a line feed only, as ``sources`` reads them."""
    text = path.suffix.lower() == ".txt"
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
            except UnicodeDecodeError:
                raise RowError(
                    "the line is not UTF-8; re-save the file as UTF-8.", path=str(path), line=number
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            if text:
                yield where, {spec.text_field: line}
                continue
            try:
                yield where, json_text.loads(line)
            except json.JSONDecodeError as exc:
                reason = (
                    f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object."
                )
                if spec.on_bad_rows != "skip":
                    raise RowError(reason, path=str(path), line=number) from None
                yield where, UnreadableRow(reason)
            except json_text.JSONTextError as exc:  # NaN / Infinity, or nested too deep
                field = json_text.dotted(exc.place) or None
                if spec.on_bad_rows != "skip":
                    raise RowError(exc.reason, path=str(path), line=number, field=field) from None
                yield where, UnreadableRow(exc.reason, field)


def _hub_stream(name: str, spec: DatasetSpec) -> RowStream:
    import datasets

    try:
        table = datasets.load_dataset(
            name, spec.config, split=spec.split, revision=spec.revision, streaming=True
        )
    except Exception as exc:
        raise DataSourceError(
            f"could not stream {name!r} as a hub dataset ({type(exc).__name__}: {exc}).", path=name
        ) from exc
    return _object_stream(table, spec, name)


def _object_stream(table: Any, spec: DatasetSpec, name: str) -> RowStream:
    if isinstance(table, Mapping):  # DatasetDict / IterableDatasetDict
        if spec.split not in table:
            raise DataSourceError(
                f"the dataset has no split {spec.split!r}; it has {', '.join(map(repr, table))}."
            )
        table = table[spec.split]
    return RowStream(name, lambda: ((f"{name}, row {i}", row) for i, row in enumerate(table)))


# ------------------------------------------------------------------------------------------ the stage


@attrs.frozen
class _StreamPlan:
    """One streamed source, its format found on its first rows, ready to be converted row by row."""

    spec: DatasetSpec
    stream: RowStream
    report: DatasetReport
    canonical: str
    loss: str
    skip: int
    head_rows: list[dict[str, Any]] = attrs.field(repr=False)


def prepare_streamed_data(
    settings: DataSettings | SupportsDataSettings, tokenizer: PreTrainedTokenizerBase
) -> PreparedData:
    """The data stage for streamed sources: an ``IterableDataset`` and the reports of the rows read first.

    Raises:
        DatasetError: the first rows cannot be read, detected or converted.
        RecipeError: the data does not suit the recipe.
    """
    settings = settings_of(settings)
    from trl_sft_kit.data.pipeline import (
        PreparedData,
        _convert,
        _pack,
        _same,
        _tokenize,
        data_seed,
        max_length_of,
        template_eos,
    )
    from trl_sft_kit.packing import get_packer

    specs = settings.dataset_specs
    seed = data_seed(settings)
    chat = bool(tokenizer.chat_template)
    plans: list[_StreamPlan] = []
    for spec in specs:
        stream = open_stream(spec)
        skip = int(spec.eval) if spec.holds_out else 0
        head = stream.head(skip + DETECTION_ROWS)
        raw = RawRows(
            stream.name, [row for _, row in head], [(where, None, i) for i, (where, _) in enumerate(head)]
        )
        if not raw.rows:
            raise DataSourceError(f"{stream.name!r} holds no rows.", path=stream.name)
        options = FormatOptions(text_field=spec.text_field, chat=chat)
        prepared = convert_rows(raw, spec, options)
        from trl_sft_kit.data.pipeline import check_data

        check_data(settings, prepared.report, tokenizer)
        rows = prepared.rows
        conversational = prepared.report.canonical != "prompt_completion" or isinstance(
            rows[0].get("prompt"), list
        )
        loss = effective_loss(
            settings.loss_spec.mode, prepared.report.canonical, conversational=conversational
        )
        note = (
            f"streamed: the first {len(raw)} rows were read to detect the format; the rest is read, "
            "converted and tokenized while training, so these counts cover those rows only."
        )
        report = attrs.evolve(prepared.report, notes=(*prepared.report.notes, note))
        plans.append(_StreamPlan(spec, stream, report, prepared.report.canonical, loss, skip, rows))

    eos = None
    for plan in plans:
        eos = template_eos(settings, plan.report, tokenizer)
        if eos is not None or plan.canonical != "text":
            break
    if eos is not None:
        tokenizer.eos_token = eos

    packer = get_packer(settings.packing_spec.strategy) if settings.packing_spec is not None else None
    pack_eval = packer is not None and settings.packing_spec is not None and settings.packing_spec.eval
    max_length = max_length_of(settings)

    # Evaluation: the first N rows of a stream, or a separate set read in full.
    eval_parts: list[tuple[Dataset, TokenizationReport]] = []
    eval_counts: list[tuple[int, str | None]] = []
    for plan in plans:
        spec = plan.spec
        if spec.holds_out:
            first = plan.stream.head(plan.skip)
            raw = RawRows(
                plan.stream.name, [row for _, row in first], [(w, None, i) for i, (w, _) in enumerate(first)]
            )
            prepared = convert_rows(raw, spec, FormatOptions(text_field=spec.text_field, chat=chat))
            held = tokenize_dataset(
                prepared.rows,
                tokenizer,
                canonical=plan.canonical,
                loss=plan.loss,
                turns=settings.loss_spec.turns,
                roles=settings.loss_spec.roles,
                max_length=max_length,
                truncate=not pack_eval,
                on_bad_rows=spec.on_bad_rows,
                row_label=functools.partial(_label, raw, prepared.kept),
                row_where=functools.partial(_where, raw, prepared.kept),
                special_tokens_in_text=spec.special_tokens_in_text,
            )
            eval_parts.append(held)
            eval_counts.append((len(held[0]), None))
        elif spec.eval is not None:
            eval_spec = attrs.evolve(
                spec, source=spec.eval, eval=None, weight=None, count=None, streaming=False
            )
            converted = _convert(eval_spec, settings, tokenizer)
            held = _tokenize(
                converted.prepared.rows,
                tokenizer,
                settings,
                converted,
                truncate=not pack_eval,
                index=_same,
            )
            eval_parts.append(held)
            eval_counts.append((len(held[0]), converted.report.source))
        else:
            eval_counts.append((0, None))
    eval_dataset = eval_tokenization = eval_packing = None
    if eval_parts:
        from trl_sft_kit.data.pipeline import _concatenate

        eval_dataset = _concatenate([part[0] for part in eval_parts])
        eval_tokenization = combine_tokenization([part[1] for part in eval_parts])
        if pack_eval and packer is not None:
            eval_dataset, eval_packing = _pack(eval_dataset, packer, settings)

    columns = ["input_ids", "labels"]
    if packer is not None and not packer.crosses_boundaries:
        columns.append("seq_lengths")
    overflow = (
        cast("Overflow | None", settings.packing_spec.overflow) if settings.packing_spec is not None else None
    )
    generate = _Generator(
        tuple(plans),
        tokenizer,
        turns=settings.loss_spec.turns,
        roles=settings.loss_spec.roles,
        max_length=max_length,
        packer=packer,
        overflow=overflow,
        columns=tuple(columns),
        seed=seed,
        chat=chat,
    )
    dataset = _iterable(generate, columns)

    head_reports = [
        tokenize_dataset(
            plan.head_rows[:DETECTION_ROWS],
            tokenizer,
            canonical=plan.canonical,
            loss=plan.loss,
            turns=settings.loss_spec.turns,
            roles=settings.loss_spec.roles,
            max_length=max_length,
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


@attrs.frozen
class _Generator:
    """Makes the training rows of a stream, from its start, each time it is called."""

    plans: tuple[_StreamPlan, ...]
    tokenizer: Any = attrs.field(repr=False)
    turns: str
    roles: tuple[str, ...]
    max_length: int | None
    packer: Packer | None
    overflow: Overflow | None
    columns: tuple[str, ...]
    seed: int
    chat: bool

    def __call__(self) -> Iterator[dict[str, Any]]:
        sources = [functools.partial(self._tokenized, plan) for plan in self.plans]
        if len(sources) == 1:
            rows = sources[0]()
        else:
            weights = [float(plan.spec.weight or 1.0) for plan in self.plans]
            rows = _interleave(sources, weights, self.seed)
        if self.packer is None:
            yield from rows
            return
        for batch in _batches(rows, PACKING_BUFFER):
            yield from self._pack(batch)

    def _tokenized(self, plan: _StreamPlan) -> Iterator[dict[str, Any]]:
        spec = plan.spec
        registration = format_registration(plan.report.format)
        options = FormatOptions(text_field=spec.text_field, chat=self.chat)
        mapping = dict(spec.columns or {})
        skip = spec.on_bad_rows == "skip"
        truncate = self.max_length if self.packer is None else None
        for where, row in itertools.islice(plan.stream.read(), plan.skip, None):
            if mapping and isinstance(row, Mapping):
                row = {mapping.get(key, key): value for key, value in row.items()}
            if isinstance(row, Mapping):
                row = handle_streamed_row(row, spec.media, where)
            try:
                converted = convert_row(registration, _as_object(row), options, where)
                masked = tokenize_row(
                    self.tokenizer, converted, plan.canonical, plan.loss, turns=self.turns, roles=self.roles
                )
            except RowExcludedError:
                continue
            except RowError as exc:
                if skip:
                    continue
                raise RowError(
                    f"{exc.reason.rstrip('.')} (format {plan.report.format!r}, streamed). Fix the row, or "
                    "pass on_bad_rows='skip'.",
                    field=exc.field,
                    path=where,
                ) from None
            ids, labels = list(masked.input_ids), list(masked.labels)
            if truncate is not None and len(ids) > truncate:
                ids, labels = ids[:truncate], labels[:truncate]
            if not any(label != IGNORE_INDEX for label in labels):
                continue
            yield {"input_ids": ids, "labels": labels}

    def _pack(self, batch: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from datasets import Dataset

        from trl_sft_kit.packing import pack

        assert self.packer is not None and self.max_length is not None
        table = Dataset.from_dict(
            {"input_ids": [row["input_ids"] for row in batch], "labels": [row["labels"] for row in batch]}
        )
        packed, _ = pack(table, self.packer, max_length=self.max_length, overflow=self.overflow)
        for row in packed.to_list():
            out = {name: row.get(name) for name in self.columns}
            if "seq_lengths" in out and out["seq_lengths"] is None:
                out["seq_lengths"] = [len(out["input_ids"])]
            yield out


def _label(raw: RawRows, kept: list[int], index: int) -> str:
    return raw.full_label(kept[index])


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _interleave(
    sources: Sequence[Callable[[], Iterator[dict[str, Any]]]], weights: list[float], seed: int
) -> Iterator[dict[str, Any]]:
    """Rows drawn from the sources by weight, until every source has been read to its end at least once."""
    chooser = random.Random(seed)
    iterators = [source() for source in sources]
    finished = [False] * len(sources)
    indices = list(range(len(sources)))
    while True:
        index = chooser.choices(indices, weights=weights)[0]
        try:
            yield next(iterators[index])
            continue
        except StopIteration:
            finished[index] = True
        if all(finished):
            return
        iterators[index] = sources[index]()
        try:
            yield next(iterators[index])
        except StopIteration:  # a source with no trainable row at all
            return


def _iterable(generate: _Generator, columns: list[str]) -> IterableDataset:
    import datasets

    features = datasets.Features({name: datasets.List(datasets.Value("int64")) for name in columns})
    return datasets.IterableDataset.from_generator(generate, features=features)


def _where(raw: RawRows, kept: list[int], index: int) -> dict[str, Any]:
    return raw.where(kept[index])
