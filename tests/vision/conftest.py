"""A tiny vision-language model saved once per session, and mllm_demo-style data with generated images."""

from __future__ import annotations

from pathlib import Path

import pytest

from trl_sft_kit.testing.vision import save_tiny_vision_model


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny LLaVA and its processor (TRL's llava_next_training template)."""
    return save_tiny_vision_model(tmp_path_factory.mktemp("tiny-llava"))
