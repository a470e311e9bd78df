"""What a recipe will train on, shown before any GPU time is spent: ``SFTRecipe.inspect()``.

One idea a module:

* ``build``: ``inspect_recipe``, the data stage ``compile()`` runs, without the model and untruncated;
* ``rendering``: one tokenized row as a ``RenderedRow`` (text in runs that carry loss or not, kept or cut);
* ``estimates``: what ``max_length`` cuts, and the fill under every registered packing strategy;
* ``values``: the report's parts (``RenderedRow``, ``LengthStats``, ``TruncationEstimate``, ...);
* ``report``: ``InspectReport`` itself;
* ``text``, ``terminal``, ``html_view``, ``plain_data``: the report as plain text, on a terminal through
  ``rich``, as HTML in a notebook, and as plain data / JSON.

The ``trl-sft-kit inspect`` command prints the report.

(The package is not called ``inspect``: a file of that name shadows the standard library's ``inspect`` when
a script in this folder runs, and attrs then fails to import.)
"""

from trl_sft_kit.inspection.build import PACKING_SAMPLE as PACKING_SAMPLE
from trl_sft_kit.inspection.build import STREAM_ROWS as STREAM_ROWS
from trl_sft_kit.inspection.build import inspect_recipe
from trl_sft_kit.inspection.rendering import render_row as _render  # noqa: F401  (its name before the split)
from trl_sft_kit.inspection.report import InspectReport
from trl_sft_kit.inspection.text import LOSS_CLOSE as LOSS_CLOSE
from trl_sft_kit.inspection.text import LOSS_OPEN as LOSS_OPEN
from trl_sft_kit.inspection.values import (
    HistogramBin,
    LengthStats,
    PackingEstimate,
    RenderedRow,
    TokenSegment,
    TruncationEstimate,
)

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
