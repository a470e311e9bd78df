"""``PackingReport``: what a packer did to a dataset, in counts a log line or a test can check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PackingReport"]


def _count(_instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0 (got {value}).")


@attrs.frozen
class PackingReport:
    """The outcome of packing one dataset; derived figures are properties, computed on demand.

    Attributes:
        strategy: The packer's registered name.
        crosses_boundaries: True when a packed row lets one sequence attend to another (TRL's
            ``wrapped``); such rows carry no ``seq_lengths``.
        max_length: The room of a packed row, in tokens.
        sequences: Rows of the input dataset.
        rows: Rows of the packed dataset.
        tokens: Tokens in the packed dataset.
        tokens_truncated: Tokens dropped because their sequence was longer than ``max_length``.
        sequences_overlong: Input sequences longer than ``max_length`` (truncated or split).
        sequences_cut: Input sequences whose tokens ended in more than one packed row (split pieces,
            or sequences ``wrapped`` cut at a row boundary).
        sequences_empty: Input sequences dropped before packing because no token of theirs would carry
            loss (none at all, or none within ``max_length`` when truncated), plus, when over-long
            sequences are split, the pieces dropped for the same reason.
        rows_untrained: Packed rows dropped because none of their tokens carries loss (only a packer that
            cuts across sequences, such as ``wrapped``, makes such rows).

    Example:
        >>> report = PackingReport("ffd", False, max_length=8, sequences=3, rows=2, tokens=12)
        >>> report.lower_bound, report.rows_over_bound, round(report.fill, 2)
        (2, 0, 0.75)
    """

    strategy: str
    crosses_boundaries: bool
    max_length: int = attrs.field(validator=attrs.validators.gt(0))
    sequences: int = attrs.field(validator=_count)
    rows: int = attrs.field(validator=_count)
    tokens: int = attrs.field(validator=_count)
    tokens_truncated: int = attrs.field(default=0, validator=_count)
    sequences_overlong: int = attrs.field(default=0, validator=_count)
    sequences_cut: int = attrs.field(default=0, validator=_count)
    sequences_empty: int = attrs.field(default=0, validator=_count)
    rows_untrained: int = attrs.field(default=0, validator=_count)

    @property
    def lower_bound(self) -> int:
        """``ceil(tokens / max_length)``: no packing of these tokens can use fewer rows."""
        return -(-self.tokens // self.max_length)

    @property
    def rows_over_bound(self) -> int:
        """How many rows more than the lower bound the packing used."""
        return self.rows - self.lower_bound

    @property
    def fill(self) -> float:
        """Fill efficiency: ``tokens / (rows * max_length)``, 1.0 for an empty result."""
        return self.tokens / (self.rows * self.max_length) if self.rows else 1.0

    @property
    def excess(self) -> float:
        """Rows above the lower bound as a fraction of it (``rows / lower_bound - 1``); 0.0 when empty."""
        return self.rows / self.lower_bound - 1.0 if self.lower_bound else 0.0

    def summary(self) -> str:
        """One line for logs.

        Examples:
            >>> PackingReport("ffd", False, max_length=8, sequences=3, rows=2, tokens=12).summary()
            'ffd: 3 sequences -> 2 rows of 8 tokens (lower bound 2, +0 = +0.000%), fill 75.00%'
        """
        parts = [
            f"{self.strategy}: {self.sequences:,} sequences -> {self.rows:,} rows of {self.max_length:,} "
            f"tokens (lower bound {self.lower_bound:,}, +{self.rows_over_bound:,} = +{self.excess:.3%}), "
            f"fill {self.fill:.2%}"
        ]
        parts.extend(_notes(self))
        return "; ".join(parts)


def _notes(report: PackingReport) -> Sequence[str]:
    notes = []
    if report.tokens_truncated:
        notes.append(
            f"{report.tokens_truncated:,} tokens truncated from {report.sequences_overlong:,} "
            "over-long sequences"
        )
    elif report.sequences_overlong:
        notes.append(f"{report.sequences_overlong:,} over-long sequences split")
    if report.sequences_cut and report.crosses_boundaries:
        notes.append(f"{report.sequences_cut:,} sequences cut across rows")
    if report.sequences_empty:
        notes.append(f"{report.sequences_empty:,} sequences or pieces without a token carrying loss dropped")
    if report.rows_untrained:
        notes.append(f"{report.rows_untrained:,} packed rows without a token carrying loss dropped")
    if report.crosses_boundaries:
        notes.append("attention crosses sequence boundaries")
    return notes
