"""Shared helpers for the loss-mask tests: one tiny tokenizer per chat template, built once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trl_sft_kit.testing import tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer_for() -> Callable[[str], Any]:
    """``tokenizer_for(name_or_template)`` returns a cached tiny tokenizer with that chat template."""
    cache: dict[str, Any] = {}

    def get(template: str) -> Any:
        if template not in cache:
            cache[template] = tiny_tokenizer(template)
        return cache[template]

    return get
