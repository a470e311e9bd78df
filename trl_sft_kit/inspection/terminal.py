"""The report on a terminal: in colour through ``rich`` (the tokens that carry loss highlighted, those past
``max_length`` struck through), or as plain text where the stream shows no colour."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from trl_sft_kit.inspection.text import loss_line, stats_lines, tokenizer_line

if TYPE_CHECKING:
    from trl_sft_kit.inspection.report import InspectReport

__all__ = ["print_report", "rich_renderable"]

_LOSS_STYLE = "bold black on green"
_CUT_STYLE = "dim strike"


def print_report(report: InspectReport, file: TextIO | None = None, *, color: bool | None = None) -> None:
    """Write ``report`` to ``file``; ``InspectReport.print`` documents the arguments."""
    stream = file if file is not None else sys.stdout
    if color is not False:
        try:
            from rich.console import Console
        except ImportError:  # rich is a dependency, but a plain text report needs nothing
            pass
        else:
            console = Console(file=stream, force_terminal=color or None, highlight=False, soft_wrap=True)
            if console.is_jupyter or (console.is_terminal and console.color_system and not console.no_color):
                console.print(report)
                return
    stream.write(str(report))


def rich_renderable(report: InspectReport) -> Any:
    """The report as a ``rich`` renderable (``InspectReport.__rich__``)."""
    from rich.console import Group
    from rich.rule import Rule
    from rich.text import Text

    parts: list[Any] = [
        Text(report.data.summary()),
        Text(tokenizer_line(report)),
        Text(loss_line(report)),
    ]
    if report.rows:
        legend = Text("\nrows: ")
        legend.append("carries loss", style=_LOSS_STYLE)
        legend.append(", no loss")
        if report.truncation is not None:
            legend.append(", ")
            legend.append(f"past max_length {report.truncation.max_length:,}", style=_CUT_STYLE)
        parts.append(legend)
    for row in report.rows:
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
    parts.append(Text("\n".join(stats_lines(report, bar="\u2588"))))
    return Group(*parts)
