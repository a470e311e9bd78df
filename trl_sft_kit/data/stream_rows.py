"""The training rows of streamed sources, made while the trainer reads them.

Each ``StreamPlan`` is one source whose format was found on its first rows; ``StreamedRows`` reads the
plans' streams from their start each time it is called, converts every row with the detected format,
tokenizes it with the kit's loss masks and truncates it (unless it is packed), skipping rows that cannot
be trained on or stopping at the first, as ``on_bad_rows`` says. Several sources are interleaved by
weight, from the seed, until each has been read to its end at least once (a shorter source starts again).
With a packer, ``PACKING_BUFFER`` tokenized sequences are packed together at a time, then the next ones.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.masks import IGNORE_INDEX
from trl_sft_kit.data.media import handle_streamed_row
from trl_sft_kit.data.prepare import _as_object
from trl_sft_kit.data.tokenize import tokenize_row
from trl_sft_kit.errors import RowError
from trl_sft_kit.formats import FormatOptions, RowExcludedError, convert_row, format_registration

if TYPE_CHECKING:
    from datasets import IterableDataset

    from trl_sft_kit.data.report import DatasetReport
    from trl_sft_kit.data.stream_sources import RowStream
    from trl_sft_kit.packing import Overflow, Packer
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["PACKING_BUFFER", "StreamPlan", "StreamedRows", "streamed_dataset"]

PACKING_BUFFER = 1000
"""Tokenized sequences packed together at a time on a stream."""


@attrs.frozen
class StreamPlan:
    """One streamed source, its format found on its first rows, ready to be converted row by row."""

    spec: DatasetSpec
    stream: RowStream
    report: DatasetReport
    canonical: str
    loss: str
    skip: int
    head_rows: Sequence[dict[str, Any]] = attrs.field(repr=False)


@attrs.frozen
class StreamedRows:
    """Makes the training rows of a stream, from its start, each time it is called."""

    plans: tuple[StreamPlan, ...]
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

    def _tokenized(self, plan: StreamPlan) -> Iterator[dict[str, Any]]:
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


def streamed_dataset(generate: StreamedRows) -> IterableDataset:
    """A ``datasets.IterableDataset`` of ``generate``'s rows, one int64 list column per name it yields."""
    import datasets

    features = datasets.Features({name: datasets.List(datasets.Value("int64")) for name in generate.columns})
    return datasets.IterableDataset.from_generator(generate, features=features)


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
