"""The numeric ranges of the common ``SFTConfig`` fields, checked by ``validate()`` before anything loads.

TRL and transformers take ``learning_rate=nan``, a batch size of 0 or ``num_train_epochs=inf`` without a
word and fail (or train nothing) only after the model has loaded; the kit names the field, the value and the
range it takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class FieldRange:
    """The values one numeric field takes: bounds (``None``: open), and values allowed outside them."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()

    def holds(self, value: float) -> bool:
        """Whether ``value`` is in the range (a NaN or an infinity never is)."""
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """The range in words, e.g. ``a finite number in [0, 1]``."""
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            text = f"a finite number in {left}{_num(self.low)}, {_num(self.high)}{right}"
        elif self.low is not None:
            text = f"a finite number {'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            text = "a finite number"
        if self.also:
            text += " or " + " or ".join(_num(value) for value in self.also)
        return text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


AT_LEAST_ONE = FieldRange(low=1)
NOT_NEGATIVE = FieldRange(low=0)
POSITIVE = FieldRange(low=0, low_open=True)

TRAINING_RANGES: Mapping[str, FieldRange] = {
    "learning_rate": NOT_NEGATIVE,
    "per_device_train_batch_size": AT_LEAST_ONE,
    "per_device_eval_batch_size": AT_LEAST_ONE,
    "gradient_accumulation_steps": AT_LEAST_ONE,
    "max_steps": FieldRange(low=0, also=(-1,)),
    "num_train_epochs": NOT_NEGATIVE,
    "warmup_steps": NOT_NEGATIVE,
    "max_length": AT_LEAST_ONE,
    "weight_decay": NOT_NEGATIVE,
    "max_grad_norm": NOT_NEGATIVE,
    "save_steps": POSITIVE,
    "eval_steps": POSITIVE,
    "logging_steps": POSITIVE,
}
"""Each checked field (by its ``SFTConfig`` name) and its range; ``max_steps=-1`` means "not set"."""


def training_range_problems(fields: Mapping[str, Any]) -> list[str]:
    """One sentence for each field of ``fields`` outside its range (for ``validate()``).

    ``fields`` are the resolved training fields (``SFTConfig`` names, values already coerced). A value that
    is ``None`` (unset) or not a number is left to the type checks.

    >>> training_range_problems({"learning_rate": -1e-4, "max_steps": -1})
    ["training field 'learning_rate' must be a finite number >= 0 (got -0.0001)."]
    """
    problems: list[str] = []
    for name, value in fields.items():
        allowed = TRAINING_RANGES.get(name)
        if allowed is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not allowed.holds(value):
            problems.append(f"training field {name!r} must be {allowed.describe()} (got {value!r}).")
    return problems
