"""The parts of an ``InspectReport``: a rendered row and its segments, length statistics, and the estimates
of what ``max_length`` cuts and how each packing strategy fills rows. Plain frozen values, no rendering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from trl_sft_kit.packing.report import PackingReport

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "HistogramBin",
    "LengthStats",
    "PackingEstimate",
    "RenderedRow",
    "TokenSegment",
    "TruncationEstimate",
]


@attrs.frozen
class TokenSegment:
    """A run of consecutive tokens of one row that all carry loss, or all do not; ``cut`` past max_length."""

    text: str
    loss: bool
    cut: bool = False


@attrs.frozen(repr=False)
class RenderedRow:
    """One row as the model sees it: token ids, each token's text, and which tokens carry loss.

    Attributes:
        index: the row's position among the rows kept after conversion (0-based), in its source.
        source: the source the row comes from, in a mixture of several.
        token_ids: the token ids, untruncated.
        tokens: each token decoded on its own (a character split across tokens shows as U+FFFD).
        loss_mask: true where the token carries loss (its label is not -100).
        segments: the row's text in runs of tokens that carry loss or not, and that ``max_length`` keeps
            or cuts; joined, they are the row's text.
        cut_at: the token index where ``max_length`` cuts the row, when it is longer.
        error: why the row could not be tokenized (then it has no tokens).
    """

    index: int
    source: str | None = None
    token_ids: tuple[int, ...] = ()
    tokens: tuple[str, ...] = ()
    loss_mask: tuple[bool, ...] = ()
    segments: tuple[TokenSegment, ...] = ()
    cut_at: int | None = None
    error: str | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_trained(self) -> int:
        """Tokens that carry loss."""
        return sum(self.loss_mask)

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)

    def title(self) -> str:
        """``row 0: 37 tokens, 12 carry loss``."""
        name = f"row {self.index}" + (f" of {self.source}" if self.source else "")
        if self.error is not None:
            return f"{name}: cannot be tokenized: {self.error}"
        title = f"{name}: {self.num_tokens:,} tokens, {self.num_trained:,} carry loss"
        if self.cut_at is not None:
            title += f", {self.num_tokens - self.cut_at:,} past max_length"
        if not self.num_trained:
            title += " (dropped from training: no token carries loss)"
        return title

    def __repr__(self) -> str:
        return f"RenderedRow({self.title()!r})"


@attrs.frozen
class HistogramBin:
    """Rows whose length is in ``[low, high]``."""

    low: int
    high: int
    count: int


@attrs.frozen
class LengthStats:
    """Token lengths of the rows (before truncation): count, total, mean, percentiles, extremes, histogram."""

    count: int
    total: int
    mean: float
    min: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: int
    histogram: tuple[HistogramBin, ...] = ()

    @classmethod
    def of(cls, lengths: Sequence[int] | NDArray[np.int64], bins: int = 12) -> LengthStats:
        """Statistics of ``lengths``, with a histogram of at most about ``bins`` bins of round widths.

        >>> stats = LengthStats.of([10, 20, 30, 40])
        >>> stats.mean, stats.p50, stats.max, sum(b.count for b in stats.histogram)
        (25.0, 25.0, 40, 4)
        """
        import numpy as np

        values = np.asarray(lengths, dtype=np.int64)
        if values.size == 0:
            return cls(0, 0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 0)
        p50, p90, p95, p99 = (round(float(v), 1) for v in np.percentile(values, [50, 90, 95, 99]))
        low, high = int(values.min()), int(values.max())
        width = _round_width(math.ceil((high - low + 1) / bins))
        start = low // width * width
        counts = np.bincount((values - start) // width)
        histogram = tuple(
            HistogramBin(start + k * width, start + (k + 1) * width - 1, int(count))
            for k, count in enumerate(counts.tolist())
        )
        return cls(
            count=int(values.size),
            total=int(values.sum()),
            mean=float(values.mean()),
            min=low,
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
            max=high,
            histogram=histogram,
        )

    def summary(self) -> str:
        if not self.count:
            return "no rows"
        return (
            f"{self.count:,} rows, {self.total:,} tokens: mean {self.mean:,.1f}, p50 {self.p50:,.0f}, "
            f"p90 {self.p90:,.0f}, p95 {self.p95:,.0f}, p99 {self.p99:,.0f}, max {self.max:,} "
            f"(min {self.min:,})"
        )


def _round_width(width: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``width``."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= width:
                return step * scale
        scale *= 10


@attrs.frozen
class TruncationEstimate:
    """What ``max_length`` cuts: rows longer than it, tokens past it, and rows left without loss.

    Attributes:
        max_length: the limit.
        rows: rows longer than ``max_length``.
        tokens: tokens past ``max_length``.
        trained_tokens: of those, tokens that carry loss.
        rows_losing_all_loss: rows whose every token carrying loss lies past ``max_length``; training drops
            them.
        total_rows, total_tokens, total_trained_tokens: the whole data, for proportions.
    """

    max_length: int
    rows: int
    tokens: int
    trained_tokens: int
    rows_losing_all_loss: int
    total_rows: int
    total_tokens: int
    total_trained_tokens: int

    def summary(self) -> str:
        if not self.rows:
            return f"max_length {self.max_length:,}: no row is longer, nothing is cut"
        share = self.rows / self.total_rows if self.total_rows else 0.0
        text = (
            f"max_length {self.max_length:,}: {self.rows:,} of {self.total_rows:,} rows ({share:.1%}) are "
            "longer; "
            f"{self.tokens:,} tokens cut ({self.tokens / max(self.total_tokens, 1):.1%}), "
            f"{self.trained_tokens:,} of them carrying loss"
        )
        if self.rows_losing_all_loss:
            text += (
                f"; {self.rows_losing_all_loss:,} rows would lose every token carrying loss and be dropped"
            )
        return text


@attrs.frozen
class PackingEstimate:
    """How one packing strategy would pack these rows into rows of ``max_length`` tokens.

    Attributes:
        strategy: the packer's registered name.
        report: what the packer did (or, for the kit's ``ffd``, what it does, worked out from the lengths).
        sequences: sequences in the whole data.
        sampled: how many sequences were packed when a sample stood in for the data (rows then scale).
        chosen: the recipe packs with this strategy.
        note: something to know (attention crossing sequences, a loss mode that refuses the strategy).
        error: why the estimate could not be made.
    """

    strategy: str
    report: PackingReport | None
    sequences: int
    sampled: int | None = None
    chosen: bool = False
    note: str = ""
    error: str | None = None

    @property
    def rows(self) -> int | None:
        """Packed rows for the whole data (scaled from the sample when one was packed)."""
        if self.report is None:
            return None
        if self.sampled:
            return round(self.report.rows * self.sequences / self.sampled)
        return self.report.rows

    def summary(self) -> str:
        name = f"{self.strategy}{' (the recipe)' if self.chosen else ''}"
        if self.report is None:
            return f"{name}: no estimate ({self.error})"
        report = self.report
        about = "about " if self.sampled else ""
        text = (
            f"{name}: {about}{self.rows:,} rows (lower bound {report.lower_bound:,}"
            f"{' in the sample' if self.sampled else ''}), fill {report.fill:.1%}"
        )
        if self.sampled:
            text += f", from a sample of {self.sampled:,} of {self.sequences:,} sequences"
        if self.note:
            text += f"; {self.note}"
        return text
