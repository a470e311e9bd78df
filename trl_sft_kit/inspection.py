"""What a recipe will train on, shown before any GPU time is spent: ``SFTRecipe.inspect()``.

``inspect_recipe`` runs the data stage ``compile()`` runs (``prepare_training_data``: read, detect,
convert, tokenize with the kit's loss masks) with the recipe's tokenizer and chat template, and never loads
the model. Tokenization runs without truncation, so lengths are measured before ``max_length`` cuts them,
and what it would cut is counted. The ``InspectReport`` it returns holds:

* the detected format and why, rows read, kept and skipped (each with its reason);
* a few rows as the chat template renders them, with the tokens that carry loss marked;
* token-length statistics and a histogram;
* the rows and tokens ``max_length`` would cut;
* the fill of packed rows under every registered packing strategy.

It shows itself in colour in a terminal (``report.print()``, through ``rich``), as HTML in a notebook
(``_repr_html_``), as plain text with ``[[`` and ``]]`` around the tokens that carry loss (``str(report)``),
and as plain data (``report.to_dict()``, ``report.to_json()``). The ``trl-sft-kit inspect`` command prints it.

(The module is not called ``inspect``: a file of that name shadows the standard library's ``inspect`` when
a script in this folder runs, and attrs then fails to import.)
"""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from trl_sft_kit.data.loss_words import loss_words
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.tokenize import PROGRESS_MIN_ROWS, TokenizationReport
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.packing.report import PackingReport

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset
    from numpy.typing import NDArray
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.masks import MaskedTokens
    from trl_sft_kit.data.pipeline import PreparedData
    from trl_sft_kit.recipe import SFTRecipe

__all__ = [
    "HistogramBin",
    "InspectReport",
    "LengthStats",
    "PackingEstimate",
    "RenderedRow",
    "TokenSegment",
    "TruncationEstimate",
    "inspect_recipe",
]

LOSS_OPEN, LOSS_CLOSE = "[[", "]]"
"""The plain-text markers around tokens that carry loss."""

PACKING_SAMPLE = 20_000
"""TRL's packers (and plug-ins) run on at most this many sequences; more are sampled and said to be."""

STREAM_ROWS = 2_000
"""For streamed sources, the rows of the stream that are tokenized and measured."""


# ------------------------------------------------------------------------------------------ values


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


# ------------------------------------------------------------------------------------------ report


@attrs.frozen(repr=False)
class InspectReport:
    """What a recipe will train on; see the module docstring. Made by ``SFTRecipe.inspect()``.

    Attributes:
        model: the model whose tokenizer was used (only its tokenizer was loaded).
        model_origin: where the model came from (``the recipe``, ``$TRL_SFT_KIT_MODEL``, ``the default``).
        chat_template: the recipe's chat template, or None for the tokenizer's own.
        has_chat_template: whether the tokenizer has a chat template.
        data: reading, detection and conversion (format, why, rows read, kept, skipped).
        tokenization: tokens and tokens carrying loss, without truncation.
        loss_mode: the recipe's loss mode (``tokenization.loss`` is what it means for this data).
        rows: the rows shown.
        lengths: token lengths of the rows training takes (after mixing), before truncation.
        truncation: what ``max_length`` cuts, or None when there is no limit.
        packing: an estimate per registered strategy (empty without ``max_length``).
        packing_strategy: the recipe's packing strategy, or None.
        eos_token: the template's end-of-turn token, when training makes it the eos token.
        notes: anything else worth knowing.
    """

    model: str
    model_origin: str
    chat_template: str | None
    has_chat_template: bool
    data: DatasetReport
    tokenization: TokenizationReport
    loss_mode: str
    rows: tuple[RenderedRow, ...]
    lengths: LengthStats
    truncation: TruncationEstimate | None
    packing: tuple[PackingEstimate, ...] = ()
    packing_strategy: str | None = None
    eos_token: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        """The detected (or chosen) dataset format."""
        return self.data.format

    @property
    def detection(self) -> str:
        """Which format, and why."""
        return self.data.detection

    @property
    def skipped(self) -> tuple[SkippedRow, ...]:
        """Every row left out, in conversion then in tokenization, with its reason."""
        return (*self.data.skipped, *self.tokenization.skipped)

    # -------------------------------------------------------------------------------- plain data

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (JSON-ready); each shown row has its token ids, texts and loss mask."""
        tokens = self.tokenization
        return {
            "model": self.model,
            "model_origin": self.model_origin,
            "chat_template": self.chat_template,
            "has_chat_template": self.has_chat_template,
            "eos_token": self.eos_token,
            "source": self.data.source,
            "format": self.data.format,
            "canonical": self.data.canonical,
            "detection": self.data.detection,
            "rows_read": self.data.rows_read,
            "rows_kept": self.data.rows_kept,
            "loss": {"mode": self.loss_mode, "effective": tokens.loss},
            "tokens": {
                "rows": tokens.rows_out,
                "total": tokens.tokens,
                "trained": tokens.trained_tokens,
                "rows_without_trained_tokens": tokens.rows_without_trained_tokens,
            },
            "lengths": {
                **{k: v for k, v in attrs.asdict(self.lengths).items() if k != "histogram"},
                "histogram": [attrs.asdict(b) for b in self.lengths.histogram],
            },
            "max_length": self.truncation.max_length if self.truncation is not None else None,
            "truncation": attrs.asdict(self.truncation) if self.truncation is not None else None,
            "packing": [_packing_dict(estimate) for estimate in self.packing],
            "packing_strategy": self.packing_strategy,
            "skipped": [
                {**attrs.asdict(row), "stage": stage}
                for stage, rows in (("conversion", self.data.skipped), ("tokenization", tokens.skipped))
                for row in rows
            ],
            "rows": [_row_dict(row) for row in self.rows],
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    # -------------------------------------------------------------------------------- plain text

    def __str__(self) -> str:
        lines = [self.data.summary(), self._tokenizer_line(), self._loss_line(), ""]
        if self.rows:
            lines.append(f"rows (the tokens that carry loss between {LOSS_OPEN} and {LOSS_CLOSE}):")
        for row in self.rows:
            lines += [f"--- {row.title()}", _plain_row(row, self.truncation), ""]
        lines += self._stats_lines(bar="#")
        return "\n".join(lines).rstrip() + "\n"

    def __repr__(self) -> str:
        return (
            f"InspectReport(source={self.data.source!r}, format={self.data.format!r}, "
            f"rows={self.tokenization.rows_out}, tokens={self.tokenization.tokens}, "
            f"trained_tokens={self.tokenization.trained_tokens})"
        )

    def _tokenizer_line(self) -> str:
        template = (
            f"chat template {self.chat_template!r}"
            if self.chat_template
            else ("the tokenizer's chat template" if self.has_chat_template else "no chat template")
        )
        eos = f"; eos {self.eos_token!r} (the template's end of turn)" if self.eos_token else ""
        return f"tokenizer: {self.model} (from {self.model_origin}, model not loaded); {template}{eos}"

    def _loss_line(self) -> str:
        tokens = self.tokenization
        mode = self.loss_mode if self.loss_mode == tokens.loss else f"{self.loss_mode} -> {tokens.loss}"
        share = tokens.trained_tokens / tokens.tokens if tokens.tokens else 0.0
        return (
            f"loss: {mode}; {tokens.rows_out:,} rows, {tokens.tokens:,} tokens, "
            f"{tokens.trained_tokens:,} carry loss ({share:.1%}: "
            f"{loss_words(tokens.loss, tokens.roles, tokens.turns)})"
        )

    def _stats_lines(self, *, bar: str) -> list[str]:
        lines = [f"token lengths (before truncation): {self.lengths.summary()}"]
        lines += _histogram_lines(self.lengths, self.truncation, bar=bar)
        lines.append("")
        if self.truncation is not None:
            lines += [f"truncation: {self.truncation.summary()}", ""]
        if self.packing and self.truncation is not None:
            lines.append(f"packing into rows of {self.truncation.max_length:,} tokens:")
            lines += [f"  {estimate.summary()}" for estimate in self.packing]
            lines.append("")
        skipped = self.skipped
        lines.append(f"skipped rows: {len(skipped) or 'none'}")
        lines += [f"  {row}" for row in skipped[:20]]
        if len(skipped) > 20:
            lines.append(f"  ... and {len(skipped) - 20} more")
        lines += [f"note: {note}" for note in self.notes]
        return lines

    # -------------------------------------------------------------------------------- terminal

    def print(self, file: TextIO | None = None, *, color: bool | None = None) -> None:
        """Print the report: in colour through ``rich`` on a terminal, else as plain text with markers.

        Args:
            file: where to write (standard output by default).
            color: ``True`` to force colour, ``False`` for plain text; ``None`` decides by the terminal
                (and ``NO_COLOR``).
        """
        stream = file if file is not None else sys.stdout
        if color is not False:
            try:
                from rich.console import Console
            except ImportError:  # rich is a dependency, but a plain text report needs nothing
                pass
            else:
                console = Console(file=stream, force_terminal=color or None, highlight=False, soft_wrap=True)
                if console.is_jupyter or (
                    console.is_terminal and console.color_system and not console.no_color
                ):
                    console.print(self)
                    return
        stream.write(str(self))

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.rule import Rule
        from rich.text import Text

        parts: list[Any] = [
            Text(self.data.summary()),
            Text(self._tokenizer_line()),
            Text(self._loss_line()),
        ]
        if self.rows:
            legend = Text("\nrows: ")
            legend.append("carries loss", style=_LOSS_STYLE)
            legend.append(", no loss")
            if self.truncation is not None:
                legend.append(", ")
                legend.append(f"past max_length {self.truncation.max_length:,}", style=_CUT_STYLE)
            parts.append(legend)
        for row in self.rows:
            parts.append(Rule(row.title(), align="left", style="dim"))
            text = Text()
            for segment in row.segments:
                style = _LOSS_STYLE if segment.loss else ""
                if segment.cut:
                    style = f"{style} {_CUT_STYLE}".strip()
                text.append(segment.text, style=style)
            if row.error is not None:
                text.append(row.error, style="red")
            parts.append(text)
        parts.append(Text(""))
        parts.append(Text("\n".join(self._stats_lines(bar="\u2588"))))
        return Group(*parts)

    # -------------------------------------------------------------------------------- notebook

    def _repr_html_(self) -> str:
        esc = html.escape
        out = [f"<div class='tsk-inspect'><style>{_CSS}</style>"]
        out.append(f"<p><b>data</b> {esc(self.data.source)}: {esc(self.data.detection)}<br>")
        skipped = len(self.data.skipped)
        out.append(
            f"rows: {self.data.rows_read:,} read, {self.data.rows_kept:,} kept as "
            f"<code>{esc(self.data.canonical)}</code> rows, {skipped:,} skipped<br>"
        )
        out.append(f"{esc(self._tokenizer_line())}<br>{esc(self._loss_line())}</p>")
        if self.rows:
            out.append(
                "<p class='tsk-legend'><mark class='tsk-loss'>carries loss</mark> no loss"
                + (" <span class='tsk-cut'>past max_length</span>" if self.truncation else "")
                + "</p>"
            )
        for row in self.rows:
            out.append(f"<details open><summary>{esc(row.title())}</summary><pre class='tsk-row'>")
            for segment in row.segments:
                text = esc(segment.text)
                if segment.loss:
                    text = f"<mark class='tsk-loss'>{text}</mark>"
                if segment.cut:
                    text = f"<span class='tsk-cut'>{text}</span>"
                out.append(text)
            out.append("</pre></details>")
        out.append(f"<p><b>token lengths</b> (before truncation): {esc(self.lengths.summary())}</p>")
        out.append(_html_histogram(self.lengths))
        if self.truncation is not None:
            out.append(f"<p><b>truncation</b> {esc(self.truncation.summary())}</p>")
        if self.packing:
            out.append(
                "<table class='tsk-table'><tr><th>packing</th><th>rows</th><th>lower bound</th>"
                "<th>fill</th><th></th></tr>"
            )
            for estimate in self.packing:
                report = estimate.report
                name = esc(estimate.strategy) + (" (the recipe)" if estimate.chosen else "")
                if report is None:
                    out.append(f"<tr><td>{name}</td><td colspan='4'>{esc(str(estimate.error))}</td></tr>")
                    continue
                about = "~" if estimate.sampled else ""
                out.append(
                    f"<tr><td>{name}</td><td>{about}{estimate.rows:,}</td><td>{report.lower_bound:,}</td>"
                    f"<td>{report.fill:.1%}</td><td>{esc(estimate.note)}</td></tr>"
                )
            out.append("</table>")
        rows = self.skipped
        out.append(f"<p><b>skipped rows</b>: {len(rows) or 'none'}</p>")
        if rows:
            out.append("<ul>" + "".join(f"<li>{esc(str(row))}</li>" for row in rows[:50]) + "</ul>")
        out += [f"<p>note: {esc(note)}</p>" for note in self.notes]
        out.append("</div>")
        return "".join(out)


_LOSS_STYLE = "bold black on green"
_CUT_STYLE = "dim strike"
_CSS = (
    ".tsk-inspect mark.tsk-loss{background:#b6f2b0;color:inherit}"
    ".tsk-inspect .tsk-cut{opacity:.5;text-decoration:line-through}"
    ".tsk-inspect pre.tsk-row{white-space:pre-wrap;word-break:break-word;padding:.4em;border:1px solid #ddd}"
    ".tsk-inspect .tsk-bar{background:#7aa6da;height:.8em;display:inline-block}"
    ".tsk-inspect table.tsk-table td,.tsk-inspect table.tsk-table th{padding:0 .6em;text-align:left}"
)


def _plain_row(row: RenderedRow, truncation: TruncationEstimate | None) -> str:
    if row.error is not None:
        return f"(cannot be tokenized: {row.error})"
    parts = []
    for k, segment in enumerate(row.segments):
        if segment.cut and (k == 0 or not row.segments[k - 1].cut) and truncation is not None:
            parts.append(f"<<< max_length {truncation.max_length:,}: what follows is cut >>>")
        parts.append(f"{LOSS_OPEN}{segment.text}{LOSS_CLOSE}" if segment.loss else segment.text)
    return "".join(parts)


def _histogram_lines(lengths: LengthStats, truncation: TruncationEstimate | None, *, bar: str) -> list[str]:
    if not lengths.histogram:
        return []
    most = max(b.count for b in lengths.histogram) or 1
    width = len(f"{lengths.histogram[-1].high:,}")
    lines = []
    for b in lengths.histogram:
        line = (
            f"  {b.low:>{width},}-{b.high:<{width},} {bar * math.ceil(30 * b.count / most):<30} {b.count:,}"
        )
        if truncation is not None and b.low <= truncation.max_length <= b.high:
            line += f"   <- max_length {truncation.max_length:,}"
        lines.append(line)
    return lines


def _html_histogram(lengths: LengthStats) -> str:
    if not lengths.histogram:
        return ""
    most = max(b.count for b in lengths.histogram) or 1
    rows = "".join(
        f"<tr><td>{b.low:,}&ndash;{b.high:,}</td><td><span class='tsk-bar' "
        f"style='width:{200 * b.count / most:.0f}px'></span></td><td>{b.count:,}</td></tr>"
        for b in lengths.histogram
    )
    return f"<table class='tsk-table'>{rows}</table>"


def _row_dict(row: RenderedRow) -> dict[str, Any]:
    return {
        "index": row.index,
        "source": row.source,
        "num_tokens": row.num_tokens,
        "num_trained": row.num_trained,
        "text": row.text,
        "token_ids": list(row.token_ids),
        "tokens": list(row.tokens),
        "loss_mask": list(row.loss_mask),
        "cut_at": row.cut_at,
        "segments": [attrs.asdict(segment) for segment in row.segments],
        "error": row.error,
    }


def _packing_dict(estimate: PackingEstimate) -> dict[str, Any]:
    report = estimate.report
    data: dict[str, Any] = {
        "strategy": estimate.strategy,
        "chosen": estimate.chosen,
        "sequences": estimate.sequences,
        "sampled": estimate.sampled,
        "rows": estimate.rows,
        "note": estimate.note,
        "error": estimate.error,
    }
    if report is not None:
        data.update(
            lower_bound=report.lower_bound,
            fill=report.fill,
            max_length=report.max_length,
            crosses_boundaries=report.crosses_boundaries,
            packed=attrs.asdict(report),
        )
    return data


# ------------------------------------------------------------------------------------------ making it


def inspect_recipe(
    recipe: SFTRecipe,
    rows: int = 5,
    *,
    packing_sample: int = PACKING_SAMPLE,
    stream_rows: int = STREAM_ROWS,
) -> InspectReport:
    """Prepare the recipe's data as ``compile()`` would, without the model, and report what training sees.

    Args:
        recipe: the recipe (it needs ``.dataset(...)``; the model, or ``$TRL_SFT_KIT_MODEL``, gives the
            tokenizer).
        rows: how many rows to render (the first ones).
        packing_sample: TRL's packers and plug-ins run on at most this many sequences (a seeded sample).
        stream_rows: for streamed sources, how many rows of the stream to measure.

    Raises:
        RecipeError: the recipe is inconsistent, or inconsistent with its data.
        DatasetError: the data cannot be read, detected or converted (file, row and field named).
        BackendError: the tokenizer cannot be loaded.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise RecipeError(f"'rows' must be a whole number >= 0 (got {rows!r}).")
    recipe.validate()
    from trl_sft_kit.compile import resolve_model
    from trl_sft_kit.data.pipeline import max_length_of, prepare_training_data
    from trl_sft_kit.data.tokenize import effective_loss, tokenize_row
    from trl_sft_kit.errors import RowError
    from trl_sft_kit.packing.rows import sequence_lengths
    from trl_sft_kit.tokenizer import apply_tokens, load_tokenizer

    model_spec, origin = resolve_model(recipe)
    from trl_sft_kit.vision.compile import is_vision_model

    if is_vision_model(model_spec):  # rows with images, rendered by the processor (trl_sft_kit.vision)
        from trl_sft_kit.vision.inspect import inspect_vision

        return inspect_vision(recipe, model_spec, origin, rows)
    tokenizer = load_tokenizer(model_spec, origin)
    apply_tokens(tokenizer, recipe)
    max_length = max_length_of(recipe)
    # Untruncated and unpacked: lengths are measured before max_length, and what it cuts is counted here.
    whole = attrs.evolve(
        recipe, packing_spec=None, training_fields={**recipe.training_fields, "max_length": None}
    )
    data = prepare_training_data(whole, tokenizer)
    notes = list(data.report.notes)
    if data.streamed:
        dataset = _head(data.dataset, stream_rows)
        notes.append(
            f"streamed: token lengths, truncation and packing are measured on the first {len(dataset):,} "
            "rows of the stream."
        )
    else:
        dataset = data.dataset
        if getattr(dataset, "_indices", None) is not None:  # rows selected from a larger table
            dataset = dataset.flatten_indices()
    lengths = sequence_lengths(dataset.data.table)

    shown = []
    for index, source, row in _pick_rows(data, rows):
        try:
            kind = _kind(row)
            conversational = kind != "prompt_completion" or isinstance(row.get("prompt"), list)
            loss = effective_loss(recipe.loss_spec.mode, kind, conversational=conversational)
            masked = tokenize_row(
                tokenizer, row, kind, loss, turns=recipe.loss_spec.turns, roles=recipe.loss_spec.roles
            )
        except (RowError, RecipeError) as exc:
            shown.append(RenderedRow(index, source, error=str(exc)))
            continue
        shown.append(_render(tokenizer, index, source, masked, max_length))

    truncation = _truncation(dataset, lengths, max_length, data.tokenization)
    packing: tuple[PackingEstimate, ...] = ()
    if max_length is not None:
        packing = _estimate_packing(recipe, dataset, lengths, max_length, packing_sample)
    if data.tokenization.rows_without_trained_tokens:
        notes.append(
            f"{data.tokenization.rows_without_trained_tokens:,} rows have no token that carries loss; "
            "training drops them."
        )
    if data.tokenization.rows_with_special_tokens:
        notes.append(data.tokenization.special_tokens_line())
    if recipe.packing_spec is not None and recipe.packing_spec.overflow == "split" and truncation is not None:
        notes.append(
            "packing with overflow='split' splits rows longer than max_length instead of cutting them."
        )
    return InspectReport(
        model=model_spec.name,
        model_origin=origin,
        chat_template=recipe.tokens_spec.chat_template,
        has_chat_template=bool(tokenizer.chat_template),
        data=data.report,
        tokenization=data.tokenization,
        loss_mode=recipe.loss_spec.mode,
        rows=tuple(shown),
        lengths=LengthStats.of(lengths),
        truncation=truncation,
        packing=packing,
        packing_strategy=recipe.packing_spec.strategy if recipe.packing_spec is not None else None,
        eos_token=data.eos_token,
        notes=tuple(notes),
    )


def _pick_rows(data: PreparedData, count: int) -> list[tuple[int, str | None, dict[str, Any]]]:
    """The first rows, or in a mixture the first rows of each source in turn: ``(index, source, row)``."""
    shares = data.mixture.sources if data.mixture is not None else ()
    if len(shares) < 2 or sum(share.rows for share in shares) != len(data.rows):
        return [(index, None, row) for index, row in enumerate(data.rows[:count])]
    starts = list(itertools.accumulate((share.rows for share in shares), initial=0))
    picked: list[tuple[int, str | None, dict[str, Any]]] = []
    for index in range(max(share.rows for share in shares)):
        for share, start in zip(shares, starts, strict=False):
            if index < share.rows and len(picked) < count:
                picked.append((index, share.name, data.rows[start + index]))
        if len(picked) >= count:
            break
    return picked


def _kind(row: Mapping[str, Any]) -> str:
    """A canonical row's kind (sources of a mixture may differ)."""
    if "messages" in row:
        return "messages"
    return "prompt_completion" if "prompt" in row else "text"


def _head(stream: Any, count: int) -> Dataset:
    """The first ``count`` tokenized rows of a stream, as a Dataset."""
    from datasets import Dataset

    rows = list(itertools.islice(iter(stream), count))
    return Dataset.from_dict(
        {"input_ids": [list(r["input_ids"]) for r in rows], "labels": [list(r["labels"]) for r in rows]}
    )


def _render(
    tokenizer: PreTrainedTokenizerBase,
    index: int,
    source: str | None,
    masked: MaskedTokens,
    max_length: int | None,
) -> RenderedRow:
    from trl_sft_kit.data.masks import IGNORE_INDEX

    ids = list(masked.input_ids)
    mask = [label != IGNORE_INDEX for label in masked.labels]
    cut_at = max_length if max_length is not None and len(ids) > max_length else None
    state = [(mask[k], cut_at is not None and k >= cut_at) for k in range(len(ids))]
    bounds = [0, *(k for k in range(1, len(ids)) if state[k] != state[k - 1]), len(ids)]

    def decode(token_ids: list[int]) -> str:
        return str(tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))

    # Each segment is the text the tokens add to the rendering: decoding a prefix and taking what the next
    # boundary's prefix adds keeps spaces that a decoder drops at the start of a piece decoded alone.
    prefix = {bound: decode(ids[:bound]) for bound in bounds}
    # A boundary inside a multi-byte character (its bytes spread over tokens) would show U+FFFD on both
    # sides: move it forward, past the character's last token.
    whole = prefix[len(ids)]
    moved = []
    for bound in bounds:
        step = bound
        while 0 < step < len(ids) and prefix[step].endswith("\ufffd") and step - bound < 8:
            text = prefix[step]
            if whole.startswith(text):  # the character really is U+FFFD
                break
            step += 1
            prefix[step] = prefix.get(step) or decode(ids[:step])
        moved.append(step)
    bounds = sorted(set(moved))
    segments = []
    for start, end in itertools.pairwise(bounds):
        before, after = prefix[start], prefix[end]
        text = after[len(before) :] if after.startswith(before) else decode(ids[start:end])
        loss, cut = state[start]
        segments.append(TokenSegment(text, loss, cut))
    tokens = tokenizer.batch_decode(
        [[token] for token in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    return RenderedRow(
        index=index,
        source=source,
        token_ids=tuple(ids),
        tokens=tuple(str(token) for token in tokens),
        loss_mask=tuple(mask),
        segments=tuple(segments),
        cut_at=cut_at,
    )


def _truncation(
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


def _estimate_packing(
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
            with _quiet_datasets(len(packed) < PROGRESS_MIN_ROWS):
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


@contextlib.contextmanager
def _quiet_datasets(quiet: bool) -> Iterator[None]:
    """Hide the progress bars ``datasets`` shows while TRL packs, when the data is too small to need them."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    if quiet and was_enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if quiet and was_enabled:
            datasets.enable_progress_bars()
