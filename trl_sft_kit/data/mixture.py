"""Mixing several training sources by weight or by count, and holding out evaluation rows, from a seed.

Everything here is pure: sizes, weights and a seed in, row indices and reports out. ``plan_rows`` decides
how many rows each source gives, ``take_rows`` which ones (repeating a source given more rows than it has,
sampling one given fewer), ``hold_out`` which rows are kept for evaluation. The data stage
(``trl_sft_kit.data.pipeline``) applies them to tokenized rows, so sources of different formats mix at the
token level. ``MixtureReport`` says what each source became: its rows, how many were taken, its share.

How many rows a source gives:

* ``count=n``: exactly ``n``;
* neither ``weight`` nor ``count``: every row, once;
* ``weight=w``: with every source weighted, ``w / sum(weights)`` of a mixture as large as the sources
  together; with some sources fixed (the two cases above), ``w`` of the whole mixture, whose size is then
  ``fixed rows / (1 - sum(weights))``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.errors import RecipeError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from trl_sft_kit.data.tokenize import TokenizationReport
    from trl_sft_kit.specs import DatasetSpec

__all__ = [
    "MixtureReport",
    "SourceShare",
    "combine_reports",
    "combine_tokenization",
    "hold_out",
    "mixture_problems",
    "plan_rows",
    "rng_for",
    "source_name",
    "take_rows",
]

_HOLD_OUT, _TAKE, _SHUFFLE, _INTERLEAVE = 1, 2, 3, 4
"""Purposes that keep the random streams of one seed apart."""


def rng_for(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """A random generator for one purpose and one source, fixed by the recipe's seed."""
    import numpy as np

    return np.random.default_rng([int(seed) % 2**32, purpose, index])


def source_name(spec: DatasetSpec) -> str:
    """A short name for a source in messages: its path or id, or what kind of object it is."""
    from trl_sft_kit.specs import InlineRows

    if isinstance(spec.source, str):
        return spec.source
    if isinstance(spec.source, InlineRows):
        return f"{len(spec.source)} inline rows"
    return type(spec.source).__name__


def mixture_problems(specs: Sequence[DatasetSpec]) -> list[str]:
    """What cannot work in these sources together, one sentence each (for ``validate()``)."""
    problems: list[str] = []
    weighted = [spec for spec in specs if spec.weight is not None]
    fixed = [spec for spec in specs if spec.weight is None]
    total = sum(float(spec.weight or 0) for spec in weighted)
    if weighted and fixed and total >= 1:
        names = ", ".join(repr(source_name(spec)) for spec in fixed)
        problems.append(
            f"the weights sum to {total:g}, leaving no room for {names}, which "
            f"{'takes' if len(fixed) == 1 else 'take'} a fixed number of rows (every row, or count=); "
            "give every source a weight (shares of the whole), or make the weights sum to less than 1."
        )
    streamed = [spec for spec in specs if spec.streaming]
    if streamed and len(streamed) != len(specs):
        problems.append(
            "some sources stream and some do not; stream all of them (streaming=True) or none, since a "
            "stream cannot be mixed with rows prepared in advance."
        )
    if len(streamed) > 1 and len(weighted) != len(specs):
        names = ", ".join(repr(source_name(spec)) for spec in streamed if spec.weight is None)
        problems.append(
            f"streamed sources are mixed by weight, and {names} has none; give every streamed source a "
            "weight (its share of the rows drawn)."
        )
    return problems


def plan_rows(
    sizes: Sequence[int], weights: Sequence[float | None], counts: Sequence[int | None]
) -> list[int]:
    """How many rows each source gives to the mixture (see the module docstring).

    Args:
        sizes: rows each source has.
        weights: each source's weight, or None.
        counts: each source's exact count, or None.

    Returns:
        One number per source; a weighted source with rows gives at least one.

    Raises:
        RecipeError: weights that leave no room for the fixed sources.

    Example:
        >>> plan_rows([100, 50], [None, 0.5], [None, None])
        [100, 100]
        >>> plan_rows([100, 10], [0.7, 0.3], [None, None])
        [77, 33]
        >>> plan_rows([100, 10], [None, None], [None, 25])
        [100, 25]
    """
    fixed: dict[int, int] = {
        index: int(count if (count := counts[index]) is not None else sizes[index])
        for index in range(len(sizes))
        if weights[index] is None
    }
    weighted = [index for index in range(len(sizes)) if weights[index] is not None]
    plan = [0] * len(sizes)
    for index, rows in fixed.items():
        plan[index] = rows
    if not weighted:
        return plan
    shares = [float(weights[index] or 0) for index in weighted]
    if fixed:
        if sum(shares) >= 1:
            raise RecipeError(
                f"the weights sum to {sum(shares):g}, leaving no room for the sources without one; make "
                "them sum to less than 1, or weight every source."
            )
        total = sum(fixed.values()) / (1 - sum(shares))
        wanted = round(sum(shares) * total)
        exact = [share * total for share in shares]
    else:
        wanted = sum(sizes[index] for index in weighted)
        exact = [share / sum(shares) * wanted for share in shares]
    rounded = _largest_remainder(exact, wanted)
    for index, rows in zip(weighted, rounded, strict=True):
        plan[index] = max(rows, 1) if sizes[index] else 0
    return plan


def _largest_remainder(exact: Sequence[float], total: int) -> list[int]:
    """Whole numbers near ``exact`` that add up to ``total`` (the largest fractions round up first)."""
    floors = [math.floor(value) for value in exact]
    left = total - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in order[: max(left, 0)]:
        floors[index] += 1
    return floors


def take_rows(available: int, wanted: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Indices of ``wanted`` of ``available`` rows: each row ``wanted // available`` times, then a sample.

    Example:
        >>> sorted(take_rows(3, 7, rng_for(0, 2)).tolist())
        [0, 0, 1, 1, 2, 2, 2]
    """
    import numpy as np

    if available <= 0 or wanted <= 0:
        return np.empty(0, np.int64)
    repeats, rest = divmod(wanted, available)
    whole = np.tile(np.arange(available, dtype=np.int64), repeats)
    sample = np.sort(rng.choice(available, size=rest, replace=False)).astype(np.int64)
    return np.concatenate([whole, sample])


def hold_out(
    available: int, eval: float | int, rng: np.random.Generator, *, source: str = "the source"
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Split ``available`` rows into training and evaluation indices (both in their original order).

    ``eval`` is a fraction (rounded up, at least one row) or a number of rows; at least one row is left
    to train on.

    Raises:
        RecipeError: nothing would be left to train on.

    Example:
        >>> train, held = hold_out(10, 0.2, rng_for(0, 1))
        >>> len(train), len(held), sorted([*train, *held]) == list(range(10))
        (8, 2, True)
    """
    import numpy as np

    wanted = math.ceil(eval * available) if isinstance(eval, float) else int(eval)
    wanted = max(wanted, 1)
    if wanted >= available:
        raise RecipeError(
            f"eval={eval!r} holds out {wanted} of the {available} rows of {source}, leaving none to train "
            "on; hold out fewer rows, or give a separate evaluation set (eval=<path>)."
        )
    chosen = np.sort(rng.choice(available, size=wanted, replace=False)).astype(np.int64)
    keep = np.ones(available, dtype=bool)
    keep[chosen] = False
    return np.flatnonzero(keep).astype(np.int64), chosen


def hold_out_rows(
    available: int, eval: float | int, seed: int, index: int = 0, *, source: str = "the source"
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``hold_out`` on source ``index``'s own random stream of ``seed`` (the same rows for every path)."""
    return hold_out(available, eval, rng_for(seed, _HOLD_OUT, index), source=source)


# ------------------------------------------------------------------------------------------ reports


@attrs.frozen
class SourceShare:
    """What one source gave: its rows after tokenization, the rows taken, their share, and its eval rows.

    Attributes:
        name: the source's path, id or kind.
        format: the detected (or forced) format.
        canonical: the kind of rows it became (``messages``, ``prompt_completion``, ``text``).
        rows: training rows it has, after conversion, tokenization and holding out.
        taken: rows it gave to the mixture (more than ``rows`` when repeated).
        weight: the weight asked for, if any.
        count: the count asked for, if any.
        eval_rows: evaluation rows it gave (held out, or from its separate evaluation set).
        eval_source: the separate evaluation set, or None when rows were held out (or none asked for).
    """

    name: str
    format: str
    canonical: str
    rows: int
    taken: int
    weight: float | None = None
    count: int | None = None
    eval_rows: int = 0
    eval_source: str | None = None

    @property
    def repeats(self) -> float:
        """How many times each row is used on average (above 1: up-sampled; below: down-sampled)."""
        return self.taken / self.rows if self.rows else 0.0


@attrs.frozen
class MixtureReport:
    """How the training rows were drawn from each source, and the evaluation rows held out or read.

    Attributes:
        sources: one ``SourceShare`` per source, in the recipe's order.
        seed: the seed that chose and shuffled the rows.
        streamed: whether the sources are streamed (then ``taken`` is not known and shares are the weights).
    """

    sources: tuple[SourceShare, ...]
    seed: int
    streamed: bool = False

    @property
    def total(self) -> int:
        """Training rows in the mixture, before packing."""
        return sum(source.taken for source in self.sources)

    @property
    def eval_rows(self) -> int:
        """Evaluation rows, from every source."""
        return sum(source.eval_rows for source in self.sources)

    def shares(self) -> dict[str, float]:
        """Each source's share of the training rows (of the draws, for streamed sources)."""
        if self.streamed:
            weights = [float(source.weight or 1.0) for source in self.sources]
            return {s.name: w / sum(weights) for s, w in zip(self.sources, weights, strict=True)}
        total = self.total
        return {source.name: (source.taken / total if total else 0.0) for source in self.sources}

    def summary(self) -> str:
        """One line per source: rows, rows taken (and how often each is used), share and eval rows."""
        shares = self.shares()
        if self.streamed:
            lines = [f"mixture (streamed, seed {self.seed}): sources drawn by weight"]
        else:
            lines = [
                f"mixture: {self.total:,} training rows from {len(self.sources)} sources (seed {self.seed})"
            ]
        for source in self.sources:
            asked = (
                f"weight {source.weight:g}"
                if source.weight is not None
                else f"count {source.count:,}"
                if source.count is not None
                else "every row"
            )
            if self.streamed:
                line = f"  {source.name} ({source.format}): {asked}, {shares[source.name]:.1%} of the draws"
            else:
                line = (
                    f"  {source.name} ({source.format}): {source.taken:,} of {source.rows:,} rows "
                    f"(x{source.repeats:.2f}, {asked}), {shares[source.name]:.1%} of the mixture"
                )
            if source.eval_rows:
                where = f"from {source.eval_source}" if source.eval_source else "held out"
                line += f"; {source.eval_rows:,} eval rows {where}"
            lines.append(line)
        return "\n".join(lines)


def combine_reports(reports: Sequence[DatasetReport]) -> DatasetReport:
    """One report for several sources: counts added up, skipped rows named with their source.

    A single report is returned as it is. The canonical kind is the sources' own when they share one,
    else ``"mixed"``.
    """
    if len(reports) == 1:
        return reports[0]
    kinds = list(dict.fromkeys(report.canonical for report in reports))
    formats = list(dict.fromkeys(report.format for report in reports))
    skipped = tuple(
        SkippedRow(
            row.where if row.where.startswith(report.source) else f"{report.source}, {row.where}",
            row.field,
            row.reason,
            row.bad,
        )
        for report in reports
        for row in report.skipped
    )
    return DatasetReport(
        source=" + ".join(report.source for report in reports),
        format=" + ".join(formats),
        canonical=kinds[0] if len(kinds) == 1 else "mixed",
        detection="; ".join(f"{report.source}: {report.detection}" for report in reports),
        rows_read=sum(report.rows_read for report in reports),
        rows_kept=sum(report.rows_kept for report in reports),
        skipped=skipped,
        notes=tuple(note for report in reports for note in report.notes),
        media_rows=sum(report.media_rows for report in reports),
        media_dropped=sum((Counter(dict(report.media_dropped)) for report in reports), Counter()),
    )


def combine_tokenization(reports: Sequence[TokenizationReport]) -> TokenizationReport:
    """One tokenization report for several sources, counts added up (a single one is returned as it is)."""
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    total: dict[str, Any] = {
        name: sum(getattr(report, name) for report in reports)
        for name in (
            "rows_in",
            "rows_out",
            "tokens",
            "trained_tokens",
            "rows_truncated",
            "tokens_truncated",
            "rows_without_trained_tokens",
            "rows_all_trained_tokens_cut",
        )
    }
    losses = list(dict.fromkeys(report.loss for report in reports))
    return attrs.evolve(
        first,
        loss=" + ".join(losses),
        skipped=tuple(row for report in reports for row in report.skipped),
        **total,
    )
