"""Small pictures of a training run: the loss curve saved next to the adapter as ``loss.png``.

matplotlib draws through its Agg canvas directly (no ``pyplot``), so the global backend and the figures
of a notebook are left alone, and nothing needs a display. matplotlib is imported only when a plot is
drawn; without it a plot is skipped with a warning, never failing the run it describes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["LOSS_PLOT_FILE", "loss_points", "save_loss_plot"]

LOSS_PLOT_FILE = "loss.png"
"""The loss curve's file name in a run's output folder."""


def loss_points(log_history: Iterable[Mapping[str, Any]], key: str = "loss") -> list[tuple[float, float]]:
    """``(step, value)`` for every entry of a trainer's ``state.log_history`` that logged ``key``.

    Entries without a step or with a value that is not a finite number are left out.

    >>> loss_points([{"loss": 2.5, "step": 1}, {"eval_loss": 2.0, "step": 1}, {"loss": 1.5, "step": 2}])
    [(1.0, 2.5), (2.0, 1.5)]
    """
    points = []
    for entry in log_history:
        value, step = entry.get(key), entry.get("step")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            continue
        points.append((float(step), float(value)))
    return points


def save_loss_plot(log_history: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path | None:
    """Draw the training loss (and the evaluation loss, when logged) by step into a small PNG at ``path``.

    Args:
        log_history: a trainer's ``state.log_history``: dicts with ``step`` and ``loss`` / ``eval_loss``.
        path: the PNG to write (its folder is created); ``output_dir / LOSS_PLOT_FILE`` by convention.

    Returns:
        The path written, or None when there is no loss to draw, matplotlib is not installed, or the file
        cannot be written (both with a ``RuntimeWarning``): a plot never fails the run it describes.
    """
    history = list(log_history)
    train, evaluation = loss_points(history), loss_points(history, "eval_loss")
    if not train and not evaluation:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        warnings.warn(
            "the loss plot is skipped: matplotlib is not installed (pip install matplotlib).",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    target = Path(path)
    try:
        figure = Figure(figsize=(5, 3), dpi=100, layout="tight")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if train:
            axes.plot(
                *zip(*train, strict=True), marker="." if len(train) < 50 else None, label="training loss"
            )
        if evaluation:
            axes.plot(*zip(*evaluation, strict=True), marker="o", linestyle="--", label="evaluation loss")
        last = (train or evaluation)[-1][1]
        axes.set_title(f"loss by step (last {last:.4f})", fontsize=10)
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if train and evaluation:
            axes.legend(fontsize=8)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png")
    except Exception as exc:  # a plot that cannot be drawn or written must not lose the run
        warnings.warn(
            f"the loss plot could not be written to {str(target)!r}: {exc}", RuntimeWarning, stacklevel=2
        )
        return None
    return target
