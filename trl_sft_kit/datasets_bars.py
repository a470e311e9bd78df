"""``datasets``' progress bars off while the kit runs one of its steps, then as the user had them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["datasets_bars_off"]


@contextlib.contextmanager
def datasets_bars_off(when: bool = True) -> Iterator[None]:
    """No ``datasets`` progress bars inside the block (when ``when``); afterwards they are on again only if
    they were on before, so a user who turned them off keeps them off. Imports ``datasets`` when entered."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    if when and was_on:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if when and was_on:
            datasets.enable_progress_bars()
