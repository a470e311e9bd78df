"""``InspectReport``: what a recipe will train on, as ``SFTRecipe.inspect()`` finds it. It holds:

* the detected format and why, rows read, kept and skipped (each with its reason);
* a few rows as the chat template renders them, with the tokens that carry loss marked;
* token-length statistics and a histogram;
* the rows and tokens ``max_length`` would cut;
* the fill of packed rows under every registered packing strategy.

It shows itself in colour in a terminal (``report.print()``, through ``rich``: ``terminal.py``), as HTML in a
notebook (``_repr_html_``: ``html_view.py``), as plain text with ``[[`` and ``]]`` around the tokens that
carry loss (``str(report)``: ``text.py``), and as plain data (``report.to_dict()``, ``report.to_json()``:
``plain_data.py``). This module holds the values; each form is drawn by its own module.
"""

from __future__ import annotations

from typing import Any, TextIO

import attrs

from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.tokenize import TokenizationReport
from trl_sft_kit.inspection.html_view import render_html
from trl_sft_kit.inspection.plain_data import report_dict, report_json
from trl_sft_kit.inspection.terminal import print_report, rich_renderable
from trl_sft_kit.inspection.text import render_text
from trl_sft_kit.inspection.values import LengthStats, PackingEstimate, RenderedRow, TruncationEstimate

__all__ = ["InspectReport"]


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
        return report_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as JSON text."""
        return report_json(self, indent)

    # -------------------------------------------------------------------------------- plain text

    def __str__(self) -> str:
        return render_text(self)

    def __repr__(self) -> str:
        return (
            f"InspectReport(source={self.data.source!r}, format={self.data.format!r}, "
            f"rows={self.tokenization.rows_out}, tokens={self.tokenization.tokens}, "
            f"trained_tokens={self.tokenization.trained_tokens})"
        )

    # -------------------------------------------------------------------------------- terminal

    def print(self, file: TextIO | None = None, *, color: bool | None = None) -> None:
        """Print the report: in colour through ``rich`` on a terminal, else as plain text with markers.

        Args:
            file: where to write (standard output by default).
            color: ``True`` to force colour, ``False`` for plain text; ``None`` decides by the terminal
                (and ``NO_COLOR``).
        """
        print_report(self, file, color=color)

    def __rich__(self) -> Any:
        return rich_renderable(self)

    # -------------------------------------------------------------------------------- notebook

    def _repr_html_(self) -> str:
        return render_html(self)
