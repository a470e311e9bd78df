"""Tiny vision-language models saved once per session (a LLaVA and an Idefics3 / SmolVLM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trl_sft_kit.testing.vision import save_tiny_vision_model


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny LLaVA and its processor (TRL's llava_next_training template)."""
    return save_tiny_vision_model(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_idefics3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Idefics3 (SmolVLM's architecture) and its processor (TRL's smolvlm_training template)."""
    return save_tiny_vision_model(tmp_path_factory.mktemp("tiny-idefics3"), architecture="idefics3")


@pytest.fixture(params=["llava", "idefics3"])
def any_vlm_dir(request: pytest.FixtureRequest) -> Path:
    """Each tiny architecture in turn."""
    name = "tiny_vlm_dir" if request.param == "llava" else "tiny_idefics3_dir"
    folder: Path = request.getfixturevalue(name)
    return folder
