"""What ``max_length`` would cut and how each registered packing strategy would fill rows, measured on the
tokenized (untruncated) data ``inspect_recipe`` prepares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trl_sft_kit.data.tokenize import PROGRESS_MIN_ROWS, TokenizationReport
from trl_sft_kit.datasets_bars import datasets_bars_off
from trl_sft_kit.inspection.values import PackingEstimate, TruncationEstimate
from trl_sft_kit.packing.report import PackingReport

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset
    from numpy.typing import NDArray

    from trl_sft_kit.recipe import SFTRecipe

__all__ = ["estimate_packing", "estimate_truncation"]


def estimate_truncation(
    dataset: Dataset, lengths: NDArray[np.int64], max_length: int | None, tokens: TokenizationReport
) -> TruncationEstimate | None:
    if max_length is None:
        return None
    import numpy as np

    from trl_sft_kit.data.masks import IGNORE_INDEX

    long_rows = np.flatnonzero(lengths > max_length)
    trained_cut = lose_all = 0
    if long_rows.size:
        for labels in dataset.select(long_rows.tolist())["labels"]:
            kept = sum(label != IGNORE_INDEX for label in labels[:max_length])
            cut = sum(label != IGNORE_INDEX for label in labels[max_length:])
            trained_cut += cut
            lose_all += int(kept == 0 and cut > 0)
    return TruncationEstimate(
        max_length=max_length,
        rows=int(long_rows.size),
        tokens=int((lengths[long_rows] - max_length).sum()),
        trained_tokens=trained_cut,
        rows_losing_all_loss=lose_all,
        total_rows=int(lengths.size),
        total_tokens=int(lengths.sum()),
        total_trained_tokens=tokens.trained_tokens,
    )


def estimate_packing(
    recipe: SFTRecipe, dataset: Dataset, lengths: NDArray[np.int64], max_length: int, sample: int
) -> tuple[PackingEstimate, ...]:
    import numpy as np

    from trl_sft_kit.packing import FFDPacker, get_packer, pack, packer_names

    chosen_name = recipe.packing_spec.strategy if recipe.packing_spec is not None else None
    chosen_overflow = recipe.packing_spec.overflow if recipe.packing_spec is not None else None
    names = packer_names()
    sampled: Dataset | None = None
    estimates = []
    from tqdm.auto import tqdm

    quiet = True if lengths.size < PROGRESS_MIN_ROWS else None  # None: a bar on a terminal only
    for name in tqdm(names, desc="estimating packing", unit="packer", leave=False, disable=quiet):
        packer = get_packer(name)
        chosen = name == chosen_name
        overflow = chosen_overflow if chosen else None
        note = ""
        if packer.crosses_boundaries:
            note = "attention crosses sequences, which are cut mid-way"
            if recipe.loss_spec.mode == "assistant_only":
                note += "; refused with loss 'assistant_only'"
        try:
            columns = [c for c in ("input_ids", "labels") if c in dataset.column_names]
            if isinstance(packer, FFDPacker) and "labels" in columns:  # as training packs: untrained rows go
                given = dataset.select_columns(columns)
                _, report = pack(given, packer, max_length=max_length, overflow=overflow)  # type: ignore[arg-type]
                estimates.append(PackingEstimate(name, report, int(lengths.size), chosen=chosen, note=note))
                continue
            if isinstance(packer, FFDPacker):
                report = _ffd_report(name, lengths, max_length, overflow or packer.overflow)
                estimates.append(PackingEstimate(name, report, int(lengths.size), chosen=chosen, note=note))
                continue
            part = None
            if lengths.size > sample:
                if sampled is None:
                    picked = np.random.default_rng(0).choice(lengths.size, size=sample, replace=False)
                    sampled = dataset.select_columns(columns).select(np.sort(picked).tolist())
                part = sample
            packed = sampled if part else dataset.select_columns(columns)
            assert packed is not None
            with datasets_bars_off(len(packed) < PROGRESS_MIN_ROWS):
                _, report = pack(packed, packer, max_length=max_length, overflow=overflow)  # type: ignore[arg-type]
            estimates.append(
                PackingEstimate(name, report, int(lengths.size), sampled=part, chosen=chosen, note=note)
            )
        except Exception as exc:  # an estimate is information: a failing plug-in must not stop the report
            estimates.append(
                PackingEstimate(
                    name, None, int(lengths.size), chosen=chosen, error=f"{type(exc).__name__}: {exc}"
                )
            )
    return tuple(estimates)


def _ffd_report(name: str, lengths: NDArray[np.int64], max_length: int, overflow: str) -> PackingReport:
    """What the kit's first-fit decreasing does with these lengths, worked out without building the rows."""
    import numpy as np

    from trl_sft_kit.packing import ffd_assign

    lengths = lengths[lengths > 0]
    overlong = lengths > max_length
    if overflow == "split":
        whole, rest = np.divmod(lengths, max_length)
        pieces = np.concatenate([np.full(int(whole.sum()), max_length, np.int64), rest[rest > 0]])
        truncated = 0
        cut = int(overlong.sum())
    else:
        pieces = np.minimum(lengths, max_length)
        truncated = int((lengths - pieces).sum())
        cut = 0
    bins = ffd_assign(pieces, max_length)
    return PackingReport(
        strategy=name,
        crosses_boundaries=False,
        max_length=max_length,
        sequences=int(lengths.size),
        rows=int(bins.max()) + 1 if bins.size else 0,
        tokens=int(pieces.sum()),
        tokens_truncated=truncated,
        sequences_overlong=int(overlong.sum()),
        sequences_cut=cut,
    )
