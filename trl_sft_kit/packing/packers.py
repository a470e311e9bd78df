"""The built-in packers: the kit's global first-fit decreasing, and TRL's strategies behind one protocol."""

from __future__ import annotations

import hashlib
import inspect
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.datasets_bars import datasets_bars_off
from trl_sft_kit.errors import BackendError, DatasetError, PluginError, RecipeError
from trl_sft_kit.packing.protocol import OVERFLOW_MODES, Overflow, Packer, PackResult
from trl_sft_kit.packing.report import PackingReport
from trl_sft_kit.packing.rows import SEQ_LENGTHS, pack_table, sequence_lengths, token_columns

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset
    from numpy.typing import NDArray

__all__ = ["BUILTIN_PACKERS", "FFDPacker", "TRLPacker", "observed_report", "pack"]


def pack(
    dataset: Dataset,
    packer: str | Packer = "ffd",
    *,
    max_length: int,
    overflow: Overflow | None = None,
) -> PackResult:
    """Pack a tokenized dataset with a registered packer (or a packer object) and report the outcome.

    Works the same on a training or an evaluation set: pack an eval set to score it the way it is
    trained, or leave it unpacked. Plug-ins that return only the dataset get a report computed from it.

    Args:
        dataset: A ``datasets.Dataset`` with ``input_ids`` (and ``labels``, masks: any token-aligned
            list columns).
        packer: A name from ``packer_names()``, or a packer.
        max_length: The room of a packed row, in tokens.
        overflow: ``"truncate"`` or ``"split"`` for sequences longer than ``max_length``; ``None`` for
            the packer's own default (``ffd``: truncate).

    Returns:
        ``PackResult(dataset, report)``.

    Raises:
        RecipeError: a bad ``max_length`` or ``overflow``, or an ``overflow`` the packer cannot do.
        PluginError: no packer has that name, or a plug-in packed rows longer than ``max_length``.
        DatasetError: the dataset cannot be packed.

    Example:
        >>> from datasets import Dataset
        >>> data = Dataset.from_dict({"input_ids": [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]})
        >>> packed, report = pack(data, "ffd", max_length=4, overflow="split")
        >>> packed.to_dict()
        {'input_ids': [[4, 5, 6, 7], [1, 2, 3, 10], [8, 9]], 'seq_lengths': [[4], [3, 1], [2]]}
        >>> report.rows, report.lower_bound, report.sequences_cut
        (3, 3, 1)
    """
    from trl_sft_kit.packing.registry import get_packer

    chosen = get_packer(packer) if isinstance(packer, str) else packer
    _check_options(max_length, overflow)
    dataset, dropped = _without_untrained(dataset, chosen, max_length, overflow)
    result = _pack_with(chosen, dataset, max_length, overflow)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], PackingReport)):
        result = PackResult(result, _report_of(chosen, dataset, result, max_length))
    packed, report = result
    if dropped:
        rows_dropped, pieces_dropped, overlong, mode = dropped
        report = attrs.evolve(
            report,
            sequences=report.sequences + rows_dropped,
            sequences_empty=report.sequences_empty + rows_dropped + pieces_dropped,
            sequences_overlong=overlong,  # of the sequences as given, before their untrained pieces went
            sequences_cut=overlong
            if mode == "split" and not chosen.crosses_boundaries
            else report.sequences_cut,
        )
    if chosen.crosses_boundaries and _has_labels(packed):
        from trl_sft_kit.packing.trained import drop_untrained_rows

        table, indices = _arrow_of(packed)
        table, gone = drop_untrained_rows(table, indices)
        if gone:
            packed = derived_dataset([packed], table, f"{chosen.name}:{max_length}:trained")
            report = attrs.evolve(
                report, rows=table.num_rows, tokens=int(sequence_lengths(table).sum()), rows_untrained=gone
            )
    return PackResult(packed, report)


def derived_dataset(sources: Sequence[Dataset], table: pa.Table, tag: str) -> Dataset:
    """``table`` as a Dataset whose fingerprint derives from ``sources``' and ``tag``.

    Given no fingerprint, ``datasets`` makes one by pickling the whole table to hash it: a second copy
    of every token in memory at once (about 2x the table's size at the peak, on a million rows gigabytes).
    """
    from datasets import Dataset

    parents = "|".join(getattr(source, "_fingerprint", None) or uuid.uuid4().hex for source in sources)
    return Dataset(table, fingerprint=hashlib.sha256(f"{parents}|{tag}".encode()).hexdigest()[:16])


def _has_labels(dataset: Any) -> bool:
    return "labels" in (getattr(dataset, "column_names", None) or ())


def _without_untrained(
    dataset: Dataset, packer: Packer, max_length: int, overflow: Overflow | None
) -> tuple[Dataset, tuple[int, int, int, str] | None]:
    """``dataset`` without the sequences (or split pieces) that would carry no loss once packed.

    Only for labelled data and a packer that keeps sequences apart and says what it does to over-long
    ones (``overflow``); returns the whole sequences and the pieces dropped, the over-long sequences given
    and the overflow mode (``None`` when nothing was dropped).
    """
    mode = overflow if overflow is not None else getattr(packer, "overflow", None)
    if packer.crosses_boundaries or mode not in OVERFLOW_MODES or not _has_labels(dataset):
        return dataset, None
    from trl_sft_kit.packing.trained import drop_untrained

    table, indices = _arrow_of(dataset)
    columns = token_columns(table)
    trimmed, rows, pieces = drop_untrained(
        table, columns, max_length=max_length, overflow=mode, indices=indices
    )
    if not rows and not pieces:
        return dataset, None
    if trimmed.num_rows == 0:
        raise DatasetError(
            f"no sequence is left to pack: none of the {rows:,} sequences has a token carrying loss within "
            f"max_length={max_length}.\nRaise max_length, or check the loss settings."
        )
    trimmed_dataset = _dataset_like(dataset, trimmed, f"trained:{max_length}:{mode}", packed_rows=False)
    overlong = int((_selected_lengths(table, indices) > max_length).sum())
    return trimmed_dataset, (rows, pieces, overlong, mode)


def _pack_with(chosen: Packer, dataset: Dataset, max_length: int, overflow: Overflow | None) -> Any:
    if overflow is None:
        result = chosen.pack(dataset, max_length=max_length)
    elif _takes_overflow(chosen):
        result = chosen.pack(dataset, max_length=max_length, overflow=overflow)
    else:
        raise RecipeError(
            f"packer {chosen.name!r} does not take an 'overflow' option; leave it out, or use packer 'ffd', "
            "which truncates or splits as asked."
        )
    return result


def _report_of(chosen: Packer, dataset: Dataset, result: Any, max_length: int) -> PackingReport:
    """The report of a plug-in that returned only the packed dataset, worked out from its rows."""
    before, indices = _arrow_of(dataset)
    after, after_indices = _arrow_of(result)
    lengths = _selected_lengths(after, after_indices)
    if lengths.size and int(lengths.max()) > max_length:
        raise PluginError(
            f"packer {chosen.name!r} made a row of {int(lengths.max())} tokens, more than max_length="
            f"{max_length}; fix the packer, or choose another.",
            name=chosen.name,
        )
    return observed_report(
        chosen.name,
        bool(chosen.crosses_boundaries),
        max_length,
        _selected_lengths(before, indices),
        lengths,
        seq_lengths=SEQ_LENGTHS in after.column_names,
    )


def _takes_overflow(packer: Packer) -> bool:
    try:
        parameters = inspect.signature(packer.pack).parameters
    except (TypeError, ValueError):
        return True
    return "overflow" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


@attrs.frozen
class FFDPacker:
    """The kit's packer: first-fit decreasing over the whole dataset, sequences kept apart.

    Every sequence, longest first, goes into the first packed row with room for it (see
    ``trl_sft_kit.packing.ffd``). Rows carry ``seq_lengths``, so TRL's padding-free collator restarts
    ``position_ids`` at each sequence and attention never crosses from one sequence to another.
    ``overflow`` is the default for sequences longer than ``max_length``: ``"truncate"`` or ``"split"``.

    Example:
        >>> from datasets import Dataset
        >>> data = Dataset.from_dict({"input_ids": [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10]]})
        >>> packed, report = FFDPacker().pack(data, max_length=5)
        >>> packed.to_dict(), report.rows_over_bound
        ({'input_ids': [[4, 5, 6, 7, 8], [1, 2, 3, 9, 10]], 'seq_lengths': [[5], [3, 2]]}, 0)
    """

    name: str = "ffd"
    overflow: Overflow = attrs.field(default="truncate", validator=attrs.validators.in_(OVERFLOW_MODES))
    crosses_boundaries: bool = attrs.field(default=False, init=False)
    description: str = (
        "the kit's first-fit decreasing over the whole dataset (global, not per 1,000 rows); "
        "over-long sequences are truncated, or split with overflow='split'"
    )

    def pack(self, dataset: Dataset, *, max_length: int, overflow: Overflow | None = None) -> PackResult:
        """Pack ``dataset`` into rows of at most ``max_length`` tokens.

        Raises:
            RecipeError: ``max_length`` < 1 or an unknown ``overflow``.
            DatasetError: the dataset is not tokenized, or has columns that cannot be packed.
        """
        chosen = self.overflow if overflow is None else overflow
        _check_options(max_length, chosen)
        table, indices = _arrow_of(dataset)
        packed, report = pack_table(
            table, max_length=max_length, overflow=chosen, indices=indices, strategy=self.name
        )
        tag = f"{self.name}:{max_length}:{chosen}"
        return PackResult(_dataset_like(dataset, packed, tag), report)


@attrs.frozen
class TRLPacker:
    """A packing strategy carried out by TRL (``trl.data_utils.pack_dataset``, in chunks of 1,000 rows).

    ``overflow`` is what the strategy does with over-long sequences (``None`` for ``wrapped``, which cuts
    every row at ``max_length`` whatever the sequences). ``wrapped`` concatenates all sequences and cuts
    the stream every ``max_length`` tokens: its rows have no ``seq_lengths``, one sequence attends to the
    one before it, and sequences are cut in the middle (``crosses_boundaries=True``; the report counts
    the cut sequences).
    """

    name: str
    trl_strategy: str
    crosses_boundaries: bool
    description: str
    overflow: Overflow | None = None

    def pack(self, dataset: Dataset, *, max_length: int, overflow: Overflow | None = None) -> PackResult:
        """Pack with TRL's implementation of ``trl_strategy`` and report what it did.

        Raises:
            RecipeError: ``overflow`` asks for something this strategy does not do.
            BackendError: TRL failed.
        """
        _check_options(max_length, overflow)
        if overflow is not None and overflow != self.overflow:
            does = f"handles them by {self.overflow}" if self.overflow else "cuts every row at max_length"
            raise RecipeError(
                f"packer {self.name!r} cannot take overflow={overflow!r}: TRL's {self.trl_strategy!r} always "
                f"{does}. Use packer 'ffd', which truncates or splits as asked."
            )
        from trl.data_utils import pack_dataset

        before, indices = _arrow_of(dataset)
        try:
            with datasets_bars_off():  # TRL's pack_dataset runs datasets' map, whose "Map:" bar is noise here
                packed = pack_dataset(dataset, seq_length=max_length, strategy=self.trl_strategy)
        except Exception as exc:
            raise BackendError(
                f"TRL's pack_dataset failed with strategy {self.trl_strategy!r} "
                f"({type(exc).__name__}: {exc}); check that the dataset holds only token-list columns."
            ) from exc
        after, after_indices = _arrow_of(packed)
        report = observed_report(
            self.name,
            self.crosses_boundaries,
            max_length,
            _selected_lengths(before, indices),
            _selected_lengths(after, after_indices),
            seq_lengths=SEQ_LENGTHS in after.column_names,
        )
        return PackResult(packed, report)


def observed_report(
    strategy: str,
    crosses_boundaries: bool,
    max_length: int,
    before: NDArray[np.int64],
    after: NDArray[np.int64],
    *,
    seq_lengths: bool,
) -> PackingReport:
    """A report worked out from the sequence lengths before packing and the row lengths after.

    Tokens missing from the output count as truncated. Without ``seq_lengths`` the rows are taken to be
    the token stream cut in order (as ``wrapped`` does), and a sequence with a row boundary strictly
    inside it counts as cut; with ``seq_lengths``, over-long sequences whose tokens all survived count as
    cut (split).
    """
    import numpy as np

    tokens_in, tokens_out = int(before.sum()), int(after.sum())
    overlong = int((before > max_length).sum())
    if seq_lengths:
        cut = overlong if tokens_out >= tokens_in else 0
    else:
        ends = np.cumsum(before)
        starts = ends - before
        boundaries = np.cumsum(after)
        nxt = np.searchsorted(boundaries, starts, side="right")
        inside = (
            np.take(boundaries, np.minimum(nxt, max(boundaries.size - 1, 0))) if boundaries.size else ends
        )
        cut = int(((nxt < boundaries.size) & (inside < ends) & (before > 0)).sum())
    return PackingReport(
        strategy=strategy,
        crosses_boundaries=crosses_boundaries,
        max_length=max_length,
        sequences=int(before.size),
        rows=int(after.size),
        tokens=tokens_out,
        tokens_truncated=max(tokens_in - tokens_out, 0),
        sequences_overlong=overlong,
        sequences_cut=cut,
        sequences_empty=int((before == 0).sum()),
    )


def _check_options(max_length: Any, overflow: Any) -> None:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise RecipeError(f"'max_length' must be a positive integer (got {max_length!r}).")
    if overflow is not None and overflow not in OVERFLOW_MODES:
        raise RecipeError(
            f"'overflow' must be one of {', '.join(map(repr, OVERFLOW_MODES))} (got {overflow!r})."
        )


def _arrow_of(dataset: Any) -> tuple[pa.Table, NDArray[np.int64] | None]:
    """The Arrow table behind a ``datasets.Dataset`` and its indices mapping (after select / shuffle)."""
    data = getattr(dataset, "data", None)
    table = getattr(data, "table", None)
    if table is None:
        raise DatasetError(
            f"packing needs a datasets.Dataset (got {type(dataset).__name__}); pack each split of a "
            "DatasetDict on its own, and materialise an IterableDataset first."
        )
    mapping = getattr(dataset, "_indices", None)  # datasets keeps select/shuffle as an indices table
    if mapping is None:
        return table, None
    return table, mapping.column(0).to_numpy().astype("int64", copy=False)


def _selected_lengths(table: pa.Table, indices: NDArray[np.int64] | None) -> NDArray[np.int64]:
    lengths = sequence_lengths(table)
    return lengths if indices is None else lengths[indices]


def _dataset_like(source: Dataset, table: pa.Table, tag: str, *, packed_rows: bool = True) -> Dataset:
    """``table`` as a Dataset with ``source``'s output format; the fingerprint derives from the source's."""
    from datasets import Dataset

    parent = getattr(source, "_fingerprint", None) or uuid.uuid4().hex
    fingerprint = hashlib.sha256(f"{parent}|{tag}".encode()).hexdigest()[:16]
    packed = Dataset(table, fingerprint=fingerprint)
    form = source.format
    if form.get("type") is None and form.get("columns") is None:
        return packed
    columns = form.get("columns")
    if columns is not None:
        columns = [c for c in columns if c in table.column_names] + ([SEQ_LENGTHS] if packed_rows else [])
    return packed.with_format(
        form.get("type"),
        columns=columns,
        output_all_columns=form.get("output_all_columns", False),
        **form.get("format_kwargs", {}),
    )


BUILTIN_PACKERS: tuple[FFDPacker | TRLPacker, ...] = (
    FFDPacker(),
    TRLPacker(
        "bfd",
        "bfd",
        False,
        "TRL's best-fit decreasing, per 1,000-row chunk; over-long sequences are truncated",
        "truncate",
    ),
    TRLPacker(
        "bfd_split",
        "bfd_split",
        False,
        "TRL's best-fit decreasing, per 1,000-row chunk; over-long sequences are split",
        "split",
    ),
    TRLPacker(
        "wrapped",
        "wrapped",
        True,
        "TRL's wrapped packing: concatenates and cuts every max_length tokens, "
        "so attention crosses sequences and sequences are cut mid-way",
    ),
)
"""The packers registered by the kit itself, in the order ``packer_names()`` lists them."""
