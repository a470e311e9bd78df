"""The packer plug-in protocol and the values it exchanges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from datasets import Dataset

    from trl_sft_kit.packing.report import PackingReport

__all__ = ["OVERFLOW_MODES", "Overflow", "PackResult", "Packer"]

Overflow = Literal["truncate", "split"]
"""What happens to a sequence longer than a row: keep its first ``max_length`` tokens, or cut it in pieces."""

OVERFLOW_MODES: tuple[Overflow, ...] = ("truncate", "split")


class PackResult(NamedTuple):
    """A packed dataset and its report; unpacks as ``packed, report = packer.pack(...)``."""

    dataset: Dataset
    report: PackingReport


@runtime_checkable
class Packer(Protocol):
    """What a packing strategy provides.

    ``crosses_boundaries`` is true when a packed row lets one sequence attend to another (TRL's
    ``wrapped``). A packer that keeps sequences apart adds a ``seq_lengths`` column (the lengths of the
    sequences laid out in each row), from which TRL's padding-free collator restarts ``position_ids`` at
    every sequence.

    ``pack`` returns a ``PackResult``. ``overflow=None`` means the packer's own way with over-long
    sequences; a packer that cannot do what is asked raises ``RecipeError``. Plug-ins written before the
    report existed may return the bare dataset and omit ``overflow``: ``trl_sft_kit.packing.pack``
    computes their report from the output.
    """

    name: str
    crosses_boundaries: bool

    def pack(self, dataset: Dataset, *, max_length: int, overflow: Overflow | None = None) -> PackResult:
        """Pack ``dataset`` (tokenized, with ``input_ids``) into rows of at most ``max_length`` tokens."""
        ...
