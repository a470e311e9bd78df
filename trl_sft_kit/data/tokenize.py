"""Tokenizing canonical rows with the kit's own loss masks, and truncating with every cut counted.

The kit prepares the trainer's data itself (TRL's own preparation is skipped), so that the masks are
right on any chat template (``trl_sft_kit.data.masks``), truncation is counted, and packing is the kit's.
Each row becomes ``input_ids`` and ``labels`` (``-100`` where the loss must not look).
The report it returns is ``trl_sft_kit.data.tokenization_report`` and what a loss mode means on each
kind of row is ``trl_sft_kit.data.loss_modes``; both are importable from here too.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.loss_modes import LOSS_FOR_KIND, effective_loss
from trl_sft_kit.data.masks import (
    IGNORE_INDEX,
    MaskedTokens,
    _common_prefix_length,
    _conversation_chat,
    _label_chat,
    _plain,
    _prompt_completion_chat,
    _render_spans,
    assistant_turns,
    tokenize_conversation,
    tokenize_prompt_completion,
)
from trl_sft_kit.data.masks import tokenize_text as _tokenize_text
from trl_sft_kit.data.masks.encoding import encode_with_offsets
from trl_sft_kit.data.masks.end_of_turn import control_ids
from trl_sft_kit.data.report import SkippedRow
from trl_sft_kit.data.text_checks import Checked, TextChecks
from trl_sft_kit.data.tokenization_report import TokenizationReport
from trl_sft_kit.errors import DatasetError, RowError, SFTKitError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "LOSS_FOR_KIND",
    "TokenizationReport",
    "effective_loss",
    "tokenize_dataset",
    "tokenize_row",
    "tokenize_rows",
]


_LOG = logging.getLogger(__name__)

_COUNTS = {"truncated": 0, "cut": 0, "no_loss": 0, "all_cut": 0, "special": 0, "char_rows": 0, "chars": 0}
"""What a shard counts: rows and tokens truncated, rows dropped, rows with special tokens, characters cut."""

SPECIAL_ROWS_NAMED = 10
"""Rows whose text holds a special token named in the report and the warning (the first ones)."""


def tokenize_row(
    tokenizer: PreTrainedTokenizerBase,
    row: Mapping[str, Any],
    canonical: str,
    loss: str,
    *,
    turns: str = "all",
    roles: Sequence[str] = ("assistant",),
) -> MaskedTokens:
    """Tokenize one canonical row and label it for ``loss`` (an ``effective_loss`` value); ``turns`` and
    ``roles`` choose the messages of conversations trained under ``assistant_only``."""
    if canonical == "messages":
        masked = tokenize_conversation(
            tokenizer,
            row["messages"],
            tools=row.get("tools"),
            turns=turns,  # type: ignore[arg-type]
            roles=roles,
        )
    elif canonical == "prompt_completion":
        masked = tokenize_prompt_completion(
            tokenizer, row["prompt"], row["completion"], tools=row.get("tools")
        )
    elif canonical == "text":
        masked = _tokenize_text(tokenizer, row["text"])
    else:
        raise RowError(f"unknown canonical row kind {canonical!r}.")
    if loss == "all":
        return attrs.evolve(masked, labels=list(masked.input_ids))
    return masked


BATCH_ROWS = 256
"""Conversations rendered before one batched call of the fast tokenizer (offsets included)."""


def tokenize_rows(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    canonical: str,
    loss: str,
    *,
    turns: str = "all",
    roles: Sequence[str] = ("assistant",),
) -> list[MaskedTokens | SFTKitError]:
    """``tokenize_row`` for each row, conversations tokenized in one batch: the result or the error of each.

    Every conversation is rendered and its turns located first (the template's work, row by row), then
    the renderings are tokenized together by the fast tokenizer with their offsets, then labelled. The
    results are those of ``tokenize_row``, row for row.
    """
    results: list[MaskedTokens | SFTKitError | None] = [None] * len(rows)
    pending: list[tuple[int, Any, set[int], str, list[tuple[int, int, int]]]] = []
    plain: list[tuple[int, str | None, str]] = []  # text and string prompt/completion rows: prompt, text
    for at, row in enumerate(rows):
        try:
            if canonical == "messages":
                chat, chosen = _conversation_chat(
                    tokenizer,
                    row["messages"],
                    row.get("tools"),
                    turns,  # type: ignore[arg-type]
                    roles=roles,
                )
            elif canonical == "prompt_completion" and not isinstance(row["prompt"], str):
                chat, chosen = _prompt_completion_chat(
                    tokenizer, row["prompt"], row["completion"], row.get("tools")
                )
            elif (text := _plain_text(tokenizer, row, canonical)) is not None:
                plain.append((at, row["prompt"] if canonical == "prompt_completion" else None, text))
                continue
            else:
                results[at] = tokenize_row(tokenizer, row, canonical, loss, turns=turns, roles=roles)
                continue
            rendered, char_spans = _render_spans(chat, chosen)
        except SFTKitError as exc:
            results[at] = exc
            continue
        pending.append((at, assistant_turns(chat, chosen), chosen, rendered, char_spans))
    if pending:
        all_ids, all_offsets = encode_with_offsets(tokenizer, [item[3] for item in pending])
        control = control_ids(tokenizer)
        for number, (at, checked, chosen, rendered, char_spans) in enumerate(pending):
            try:
                masked = _label_chat(
                    tokenizer,
                    rendered,
                    all_ids[number],
                    all_offsets[number],
                    char_spans,
                    chosen,
                    True,
                    checked,
                    control=control,
                )
            except SFTKitError as exc:
                results[at] = exc
                continue
            results[at] = attrs.evolve(masked, labels=list(masked.input_ids)) if loss == "all" else masked
    if plain:
        full = tokenizer([text for _, _, text in plain])["input_ids"]
        prompts = [prompt for _, prompt, _ in plain if prompt is not None]
        prompt_ids = iter(tokenizer(prompts)["input_ids"] if prompts else [])
        for (at, prompt, text), ids in zip(plain, full, strict=True):
            start = 0 if prompt is None else _common_prefix_length(list(next(prompt_ids)), ids)
            masked = _plain(tokenizer, list(ids), start, text)
            results[at] = attrs.evolve(masked, labels=list(masked.input_ids)) if loss == "all" else masked
    return cast("list[MaskedTokens | SFTKitError]", results)


def _plain_text(tokenizer: PreTrainedTokenizerBase, row: Mapping[str, Any], canonical: str) -> str | None:
    """The text a plain-text or string prompt/completion row is tokenized as (eos appended as TRL does),
    or None for any other row."""
    if canonical == "text" and isinstance(row.get("text"), str):
        body = row["text"]
    elif (
        canonical == "prompt_completion"
        and isinstance(row.get("prompt"), str)
        and isinstance(row.get("completion"), str)
    ):
        body = row["completion"]
    else:
        return None
    eos = tokenizer.eos_token
    if eos and not body.endswith(eos):
        body = body + eos
    return body if canonical == "text" else row["prompt"] + body


@attrs.frozen
class _Job:
    """What every shard of one ``tokenize_dataset`` call needs (inherited by forked workers)."""

    rows: Sequence[Mapping[str, Any]]
    tokenizer: Any
    canonical: str
    loss: str
    turns: str
    max_length: int | None
    truncate: bool
    on_bad_rows: str
    row_label: Callable[[int], str]
    roles: Sequence[str] = ("assistant",)
    checks: TextChecks | None = None
    row_where: Callable[[int], dict[str, Any]] | None = None
    """``RowError``'s path, row and line of row ``i``; without it, errors name the row's index."""

    def __call__(self, start: int, end: int) -> _Shard:
        """Tokenize rows ``[start, end)`` into flat token arrays; stop at the first bad row (``error``)."""
        import numpy as np

        ids_parts: list[list[int]] = []
        label_parts: list[list[int]] = []
        skipped: list[SkippedRow] = []
        counts = dict(_COUNTS)
        special_rows: list[str] = []
        failure: tuple[str, str | None, dict[str, Any]] | Exception | None = None
        for batch_start in range(start, end, BATCH_ROWS):
            batch_end = min(batch_start + BATCH_ROWS, end)
            batch, checked = self._checked(batch_start, batch_end)
            tokenized = iter(
                tokenize_rows(
                    self.tokenizer,
                    [row for row in batch if not isinstance(row, RowError)],
                    self.canonical,
                    self.loss,
                    turns=self.turns,
                    roles=self.roles,
                )
            )
            for at, row in enumerate(batch, batch_start):
                masked = row if isinstance(row, RowError) else next(tokenized)
                check = checked.get(at)
                if check is not None and check.specials and not isinstance(masked, Exception):
                    counts["special"] += 1
                    if len(special_rows) < SPECIAL_ROWS_NAMED:
                        special_rows.append(self.row_label(at))
                if isinstance(masked, RowError):
                    if self.on_bad_rows == "skip":
                        skipped.append(SkippedRow(self.row_label(at), masked.field, masked.reason))
                        continue
                    where = self.row_where(at) if self.row_where is not None else {"row": at}
                    failure = (masked.reason, masked.field, where)
                    break
                if isinstance(masked, Exception):
                    failure = masked
                    break
                ids, labs = masked.input_ids, masked.labels
                chars_cut = check.chars_cut if check is not None else 0
                if chars_cut:
                    counts["char_rows"] += 1
                    counts["chars"] += chars_cut
                if not any(label != IGNORE_INDEX for label in labs):
                    counts["no_loss"] += 1
                    continue
                too_long = self.max_length is not None and len(ids) > self.max_length
                if self.truncate and self.max_length is not None and (too_long or chars_cut):
                    counts["truncated"] += 1
                    counts["cut"] += max(len(ids) - self.max_length, 0)
                    ids, labs = ids[: self.max_length], labs[: self.max_length]
                    if not any(label != IGNORE_INDEX for label in labs):
                        counts["all_cut"] += 1
                        continue
                ids_parts.append(ids)
                label_parts.append(labs)
            if failure is not None:
                break
        lengths = np.fromiter(map(len, ids_parts), dtype=np.int64, count=len(ids_parts))
        flat_ids = np.fromiter(
            itertools.chain.from_iterable(ids_parts), dtype=np.int64, count=int(lengths.sum())
        )
        flat_labels = np.fromiter(
            itertools.chain.from_iterable(label_parts), dtype=np.int64, count=int(lengths.sum())
        )
        return _Shard(
            end - start,
            flat_ids,
            flat_labels,
            lengths,
            counts,
            tuple(skipped),
            failure,
            tuple(special_rows),
        )

    def _checked(self, start: int, end: int) -> tuple[list[Mapping[str, Any] | RowError], dict[int, Checked]]:
        """Rows ``[start, end)`` after the text checks (``text_checks``): each row, or its RowError."""
        rows: list[Mapping[str, Any] | RowError] = []
        checked: dict[int, Checked] = {}
        for at in range(start, end):
            row = self.rows[at]
            if self.checks is None:
                rows.append(row)
                continue
            try:
                result = self.checks(row)
            except RowError as exc:
                rows.append(exc)
                continue
            checked[at] = result
            rows.append(result.row)
        return rows, checked


@attrs.frozen
class _Shard:
    """One shard's tokens, flat (numpy, as they travel back from a worker), its counts and its failure."""

    rows_in: int
    input_ids: Any
    labels: Any
    lengths: Any
    counts: dict[str, int]
    skipped: tuple[SkippedRow, ...]
    failure: tuple[str, str | None, dict[str, Any]] | Exception | None
    special_rows: tuple[str, ...] = ()

    def table(self) -> Any:
        """The shard as an Arrow table of ``input_ids`` and ``labels`` lists."""
        import numpy as np
        import pyarrow as pa

        offsets = pa.array(np.concatenate(([0], np.cumsum(self.lengths))).astype(np.int32))
        return pa.table(
            {
                "input_ids": pa.ListArray.from_arrays(offsets, pa.array(self.input_ids, pa.int64())),
                "labels": pa.ListArray.from_arrays(offsets, pa.array(self.labels, pa.int64())),
            }
        )


def tokenize_dataset(
    dataset: Dataset | Sequence[Mapping[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    canonical: str,
    loss: str,
    turns: str = "all",
    roles: Sequence[str] = ("assistant",),
    max_length: int | None = None,
    truncate: bool = True,
    on_bad_rows: str = "error",
    row_label: Callable[[int], str] = lambda index: f"row {index}",
    row_where: Callable[[int], dict[str, Any]] | None = None,
    source: str = "the dataset",
    num_proc: int | None = None,
    special_tokens_in_text: str = "warn",
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize every row with its labels; truncate to ``max_length`` (when ``truncate``), counting cuts.

    A row left with no token that carries loss (every assistant turn flagged ``train: false``, or every
    such token beyond ``max_length``) is dropped and counted, never silently. The rows are worked on in
    shards over ``num_proc`` worker processes (``trl_sft_kit.data.parallel``); the result is the serial
    one, row for row, and a row's error names it as the serial run would.

    Args:
        dataset: canonical rows (``messages``, ``prompt``/``completion`` or ``text``).
        tokenizer: the tokenizer, with its chat template for conversational rows.
        canonical: the rows' kind.
        loss: an ``effective_loss`` value: ``all``, ``completion_only`` or ``assistant_only``.
        turns: ``all`` or ``last`` assistant turns, for ``assistant_only``.
        roles: the roles trained under ``assistant_only`` (``LossSpec.roles``).
        max_length: the longest row; ``None`` for no limit.
        truncate: cut rows to ``max_length`` here (off when a packer handles long rows).
        on_bad_rows: ``error`` or ``skip`` rows the template cannot render.
        row_label: names row ``i`` in reports (``file.jsonl, line 12``).
        row_where: ``RowError``'s ``path``, ``row`` and ``line`` of row ``i``, so that an error's
            attributes and its message name the same place (without it: the row's index).
        source: names the source in a dataset-level error.
        num_proc: worker processes (``resolve_num_proc``: ``$TRL_SFT_KIT_NUM_PROC`` or the cores when
            None; 1 works in this process).
        special_tokens_in_text: what to do with a special token in a row's own text
            (``trl_sft_kit.data.text_checks``): ``warn`` (keep, log a warning), ``keep``, ``error`` or
            ``escape``. Lone surrogates are a ``RowError``, and with ``truncate`` each field is first cut
            to ``max_length * CHARS_PER_TOKEN`` characters, counted as truncation.

    Returns:
        A Dataset with ``input_ids`` and ``labels``, and the report.
    """
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset

    from trl_sft_kit.data.parallel import ArrowSpool, map_shards, resolve_num_proc, spools_to_disk

    job = _Job(
        dataset,
        tokenizer,
        canonical,
        loss,
        turns,
        max_length,
        truncate,
        on_bad_rows,
        row_label,
        roles,
        TextChecks.of(tokenizer, special_tokens_in_text, max_length, truncate),
        row_where,
    )
    tables = []
    spool = ArrowSpool() if spools_to_disk(len(dataset)) else None
    rows_out = 0
    skipped: list[SkippedRow] = []
    special_rows: list[str] = []
    counts = dict(_COUNTS)
    tokens = trained = 0
    digest = hashlib.blake2b(digest_size=8)  # the result's fingerprint: its tokens (see ``derived_dataset``)
    bar = progress(dataset, "tokenizing")
    results = map_shards(job, len(dataset), resolve_num_proc(num_proc))
    try:
        for shard in results:
            if isinstance(shard.failure, Exception):
                raise shard.failure
            if shard.failure is not None:
                reason, field, where = shard.failure
                raise RowError(reason, field=field, **where) from None
            table = shard.table()
            for array in (shard.lengths, shard.input_ids, shard.labels):
                digest.update(np.ascontiguousarray(array).data)
            rows_out += table.num_rows
            if spool is not None:
                spool.write(table)
            else:
                tables.append(table)
            skipped.extend(shard.skipped)
            special_rows.extend(shard.special_rows)
            for key, value in shard.counts.items():
                counts[key] += value
            tokens += int(shard.lengths.sum())
            trained += int(np.count_nonzero(shard.labels != IGNORE_INDEX))
            bar.update(shard.rows_in)
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    finally:
        results.close()  # stops the workers now, also when the loop is left by an error or Ctrl-C
        bar.close()
    report = TokenizationReport(
        loss=loss,
        rows_in=len(dataset),
        rows_out=rows_out,
        tokens=tokens,
        trained_tokens=trained,
        max_length=max_length if truncate else None,
        rows_truncated=counts["truncated"],
        tokens_truncated=counts["cut"],
        rows_without_trained_tokens=counts["no_loss"],
        rows_all_trained_tokens_cut=counts["all_cut"],
        skipped=tuple(skipped),
        roles=roles,
        turns=turns,
        rows_with_special_tokens=counts["special"],
        special_token_rows=tuple(special_rows[:SPECIAL_ROWS_NAMED]),
        special_tokens_in_text=special_tokens_in_text,
        rows_cut_by_chars=counts["char_rows"],
        chars_cut=counts["chars"],
    )
    if special_tokens_in_text == "warn" and report.rows_with_special_tokens:
        _LOG.warning("%s: %s", source, report.special_tokens_line())
    if not rows_out:
        if spool is not None:
            spool.discard()
        raise DatasetError(
            f"{source}: no row is left to train on after tokenization.\n{report.summary()}\n"
            "Raise max_length, or check the loss settings and per-turn 'train' flags.",
            path=source,
        )
    table = spool.read() if spool is not None else pa.concat_tables(tables)
    return Dataset(table, fingerprint=digest.hexdigest()), report


PROGRESS_MIN_ROWS = 1000
"""Data stages show a progress bar from this many rows on (and only on a terminal or in a notebook)."""


def progress(rows: Sized, desc: str) -> Any:
    """``rows`` wrapped in a tqdm progress bar when there are enough of them for it to matter.

    The bar goes to stderr, only on a terminal or in a notebook (``disable=None``), and is removed when
    done; ``TQDM_DISABLE=1`` turns every bar off.
    """
    from tqdm.auto import tqdm

    return tqdm(
        rows,
        desc=desc,
        unit="row",
        leave=False,
        disable=None if len(rows) >= PROGRESS_MIN_ROWS else True,
    )
