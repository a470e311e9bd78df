"""``PreparedData``: what the data stage gives ``compile()`` and ``inspect``, the rows and every report.

The trainer's rows (``input_ids``, ``labels``, ``seq_lengths`` when packed), the evaluation rows, and the
reports of how they were made: reading, detection and conversion, tokenization, packing, the mixture, the
preprocessing cache and each source's fingerprint. ``trl_sft_kit.data.pipeline`` makes it, the
preprocessing cache stores and loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.mixture import MixtureReport
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.data.tokenization_report import TokenizationReport

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

    from trl_sft_kit.data.cache import CacheStatus
    from trl_sft_kit.packing import PackingReport

__all__ = ["PreparedData"]


@attrs.frozen
class PreparedData:
    """The trainer-ready rows and every report of how they were made.

    Attributes:
        dataset: ``input_ids`` and ``labels`` (and ``seq_lengths`` when packed without crossing sequences);
            a ``datasets.IterableDataset`` for streamed sources.
        rows: the canonical training rows before tokenization, source by source (for streamed sources,
            the rows read to detect the format; empty when the data came from the cache, and in a
            ``Compiled``: ``compile()`` lets them go once tokenized). A list, or for sources of
            ``SPOOL_MIN_ROWS`` rows and more a read-only sequence of rows kept on disk
            (``trl_sft_kit.data.row_store``).
        report: reading, detection and conversion (of every source together for a mixture, whose shares
            are among its notes).
        tokenization: tokens, tokens carrying loss, truncation.
        packing: the packing report, when the recipe packs.
        eos_token: the chat template's end-of-turn token when it differs from the tokenizer's eos and chat
            data is trained (the model must learn to stop on it), else None.
        eval_dataset: the evaluation rows (held out or read from separate sets), tokenized and, when
            ``packing(eval=True)``, packed; None without ``eval=``.
        eval_tokenization: how the evaluation rows were tokenized.
        eval_packing: how the evaluation rows were packed.
        mixture: each source's rows, rows taken, share and evaluation rows, for a mixture or with ``eval=``.
        cache: whether the preprocessing cache was used, and where (None when it was not consulted).
        streamed: whether ``dataset`` is read while training.
        sources: each source's fingerprint as it was read.
    """

    dataset: Dataset | IterableDataset = attrs.field(repr=False)
    rows: Sequence[dict[str, Any]] = attrs.field(repr=False)
    report: DatasetReport
    tokenization: TokenizationReport
    packing: PackingReport | None = None
    eos_token: str | None = None
    eval_dataset: Dataset | None = attrs.field(default=None, repr=False)
    eval_tokenization: TokenizationReport | None = None
    eval_packing: PackingReport | None = None
    mixture: MixtureReport | None = None
    cache: CacheStatus | None = None
    streamed: bool = False
    sources: tuple[dict[str, Any], ...] = ()
    """Each source's SHA-256 (``data.provenance``), taken before the sources were read and checked again
    after: what ``run.json`` records."""

    def summary(self) -> str:
        """What the data became: format, rows, tokens carrying loss, truncation, packing, eval and cache."""
        parts = [self.report.summary(), self.tokenization.summary()]
        if self.packing is not None:
            parts.append(f"packing: {self.packing.summary()}")
        if self.eval_tokenization is not None:
            parts.append("evaluation " + self.eval_tokenization.summary())
        if self.eval_packing is not None:
            parts.append(f"evaluation packing: {self.eval_packing.summary()}")
        if self.cache is not None:
            parts.append(self.cache.summary())
        return "\n".join(parts)
