"""The report as HTML, the way a notebook shows it: the tokens that carry loss marked, those past
``max_length`` struck through, the length histogram as bars, packing estimates as a table."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from trl_sft_kit.inspection.text import loss_line, tokenizer_line

if TYPE_CHECKING:
    from trl_sft_kit.inspection.report import InspectReport
    from trl_sft_kit.inspection.values import LengthStats

__all__ = ["render_html"]

_CSS = (
    ".tsk-inspect mark.tsk-loss{background:#b6f2b0;color:inherit}"
    ".tsk-inspect .tsk-cut{opacity:.5;text-decoration:line-through}"
    ".tsk-inspect pre.tsk-row{white-space:pre-wrap;word-break:break-word;padding:.4em;border:1px solid #ddd}"
    ".tsk-inspect .tsk-bar{background:#7aa6da;height:.8em;display:inline-block}"
    ".tsk-inspect table.tsk-table td,.tsk-inspect table.tsk-table th{padding:0 .6em;text-align:left}"
)


def render_html(report: InspectReport) -> str:
    """The report as HTML (``InspectReport._repr_html_``, which notebooks show)."""
    esc = html.escape
    out = [f"<div class='tsk-inspect'><style>{_CSS}</style>"]
    out.append(f"<p><b>data</b> {esc(report.data.source)}: {esc(report.data.detection)}<br>")
    skipped = len(report.data.skipped)
    out.append(
        f"rows: {report.data.rows_read:,} read, {report.data.rows_kept:,} kept as "
        f"<code>{esc(report.data.canonical)}</code> rows, {skipped:,} skipped<br>"
    )
    out.append(f"{esc(tokenizer_line(report))}<br>{esc(loss_line(report))}</p>")
    if report.rows:
        out.append(
            "<p class='tsk-legend'><mark class='tsk-loss'>carries loss</mark> no loss"
            + (" <span class='tsk-cut'>past max_length</span>" if report.truncation else "")
            + "</p>"
        )
    for row in report.rows:
        out.append(f"<details open><summary>{esc(row.title())}</summary><pre class='tsk-row'>")
        for segment in row.segments:
            text = esc(segment.text)
            if segment.loss:
                text = f"<mark class='tsk-loss'>{text}</mark>"
            if segment.cut:
                text = f"<span class='tsk-cut'>{text}</span>"
            out.append(text)
        out.append("</pre></details>")
    out.append(f"<p><b>token lengths</b> (before truncation): {esc(report.lengths.summary())}</p>")
    out.append(html_histogram(report.lengths))
    if report.truncation is not None:
        out.append(f"<p><b>truncation</b> {esc(report.truncation.summary())}</p>")
    if report.packing:
        out.append(
            "<table class='tsk-table'><tr><th>packing</th><th>rows</th><th>lower bound</th>"
            "<th>fill</th><th></th></tr>"
        )
        for estimate in report.packing:
            packed = estimate.report
            name = esc(estimate.strategy) + (" (the recipe)" if estimate.chosen else "")
            if packed is None:
                out.append(f"<tr><td>{name}</td><td colspan='4'>{esc(str(estimate.error))}</td></tr>")
                continue
            about = "~" if estimate.sampled else ""
            out.append(
                f"<tr><td>{name}</td><td>{about}{estimate.rows:,}</td><td>{packed.lower_bound:,}</td>"
                f"<td>{packed.fill:.1%}</td><td>{esc(estimate.note)}</td></tr>"
            )
        out.append("</table>")
    rows = report.skipped
    out.append(f"<p><b>skipped rows</b>: {len(rows) or 'none'}</p>")
    if rows:
        out.append("<ul>" + "".join(f"<li>{esc(str(row))}</li>" for row in rows[:50]) + "</ul>")
    out += [f"<p>note: {esc(note)}</p>" for note in report.notes]
    out.append("</div>")
    return "".join(out)


def html_histogram(lengths: LengthStats) -> str:
    if not lengths.histogram:
        return ""
    most = max(b.count for b in lengths.histogram) or 1
    rows = "".join(
        f"<tr><td>{b.low:,}&ndash;{b.high:,}</td><td><span class='tsk-bar' "
        f"style='width:{200 * b.count / most:.0f}px'></span></td><td>{b.count:,}</td></tr>"
        for b in lengths.histogram
    )
    return f"<table class='tsk-table'>{rows}</table>"
