"""Common prefix and suffix lengths of two renderings or token lists, the measure every span is cut by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _common_prefix_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the common prefix of two strings or lists (bisection over C-level slice compares)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low] and a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


def _common_suffix_length(a: str, b: str) -> int:
    return _common_prefix_length(a[::-1], b[::-1])
