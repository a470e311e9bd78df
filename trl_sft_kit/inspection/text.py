"""The report as plain text: the summary lines, each shown row with ``[[`` and ``]]`` around the tokens
that carry loss, the length histogram drawn in characters, truncation, packing and skipped rows.

``str(report)`` is ``render_text(report)``; the terminal and HTML renderers reuse its summary lines.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trl_sft_kit.data.loss_words import loss_words

if TYPE_CHECKING:
    from trl_sft_kit.inspection.report import InspectReport
    from trl_sft_kit.inspection.values import LengthStats, RenderedRow, TruncationEstimate

__all__ = ["LOSS_CLOSE", "LOSS_OPEN", "loss_line", "render_text", "stats_lines", "tokenizer_line"]

LOSS_OPEN, LOSS_CLOSE = "[[", "]]"
"""The plain-text markers around tokens that carry loss."""


def render_text(report: InspectReport) -> str:
    lines = [report.data.summary(), tokenizer_line(report), loss_line(report), ""]
    if report.rows:
        lines.append(f"rows (the tokens that carry loss between {LOSS_OPEN} and {LOSS_CLOSE}):")
    for row in report.rows:
        lines += [f"--- {row.title()}", plain_row(row, report.truncation), ""]
    lines += stats_lines(report, bar="#")
    return "\n".join(lines).rstrip() + "\n"


def tokenizer_line(report: InspectReport) -> str:
    template = (
        f"chat template {report.chat_template!r}"
        if report.chat_template
        else ("the tokenizer's chat template" if report.has_chat_template else "no chat template")
    )
    eos = f"; eos {report.eos_token!r} (the template's end of turn)" if report.eos_token else ""
    return f"tokenizer: {report.model} (from {report.model_origin}, model not loaded); {template}{eos}"


def loss_line(report: InspectReport) -> str:
    tokens = report.tokenization
    mode = report.loss_mode if report.loss_mode == tokens.loss else f"{report.loss_mode} -> {tokens.loss}"
    share = tokens.trained_tokens / tokens.tokens if tokens.tokens else 0.0
    return (
        f"loss: {mode}; {tokens.rows_out:,} rows, {tokens.tokens:,} tokens, "
        f"{tokens.trained_tokens:,} carry loss ({share:.1%}: "
        f"{loss_words(tokens.loss, tokens.roles, tokens.turns)})"
    )


def stats_lines(report: InspectReport, *, bar: str) -> list[str]:
    lines = [f"token lengths (before truncation): {report.lengths.summary()}"]
    lines += histogram_lines(report.lengths, report.truncation, bar=bar)
    lines.append("")
    if report.truncation is not None:
        lines += [f"truncation: {report.truncation.summary()}", ""]
    if report.packing and report.truncation is not None:
        lines.append(f"packing into rows of {report.truncation.max_length:,} tokens:")
        lines += [f"  {estimate.summary()}" for estimate in report.packing]
        lines.append("")
    skipped = report.skipped
    lines.append(f"skipped rows: {len(skipped) or 'none'}")
    lines += [f"  {row}" for row in skipped[:20]]
    if len(skipped) > 20:
        lines.append(f"  ... and {len(skipped) - 20} more")
    lines += [f"note: {note}" for note in report.notes]
    return lines


def plain_row(row: RenderedRow, truncation: TruncationEstimate | None) -> str:
    if row.error is not None:
        return f"(cannot be tokenized: {row.error})"
    parts = []
    for k, segment in enumerate(row.segments):
        if segment.cut and (k == 0 or not row.segments[k - 1].cut) and truncation is not None:
            parts.append(f"<<< max_length {truncation.max_length:,}: what follows is cut >>>")
        parts.append(f"{LOSS_OPEN}{segment.text}{LOSS_CLOSE}" if segment.loss else segment.text)
    return "".join(parts)


def histogram_lines(lengths: LengthStats, truncation: TruncationEstimate | None, *, bar: str) -> list[str]:
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
