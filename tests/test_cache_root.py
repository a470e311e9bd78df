"""One meaning for ``$TRL_SFT_KIT_CACHE``; the default under the Hugging Face cache; clear_cache() keeps the
tiny models; reading a file leaves datasets' progress-bar setting as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from trl_sft_kit.cache_root import kit_cache_root
from trl_sft_kit.data import cache
from trl_sft_kit.testing import cached_tiny_model_dir


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("TRL_SFT_KIT_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_cache_is_under_hf_home_or_xdg_cache_home(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert kit_cache_root() == Path.home() / ".cache" / "huggingface" / "trl_sft_kit"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kit_cache_root() == tmp_path / "xdg" / "huggingface" / "trl_sft_kit"
    clean_env.setenv("HF_HOME", str(tmp_path / "hf"))
    assert kit_cache_root() == tmp_path / "hf" / "trl_sft_kit"
    assert cache.cache_dir() == tmp_path / "hf" / "trl_sft_kit" / "data"


def test_one_folder_holds_the_data_cache_and_the_tiny_models(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("TRL_SFT_KIT_CACHE", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "data"
    assert cached_tiny_model_dir("qwen2_5").parent == tmp_path
    clean_env.setenv("TRL_SFT_KIT_CACHE", "off")  # the preprocessing cache off; the tiny models still cached
    assert cache.cache_dir() is None
    assert kit_cache_root() == Path.home() / ".cache" / "huggingface" / "trl_sft_kit"


def test_clear_cache_never_deletes_the_tiny_models(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("TRL_SFT_KIT_CACHE", str(tmp_path))
    model = cached_tiny_model_dir("qwen2_5")
    data = tmp_path / "data"
    (data / ("ab" * 32)).mkdir(parents=True)  # an entry (its SHA-256 key)
    (data / f".tmp-{'c' * 32}").mkdir()  # a half-written one
    (data / "my-notes").mkdir()  # not the kit's
    assert cache.clear_cache() == 2
    assert sorted(path.name for path in data.iterdir()) == ["my-notes"]
    assert (model / "config.json").is_file()
    assert cached_tiny_model_dir("qwen2_5") == model


@pytest.mark.parametrize("enabled", [False, True])
def test_reading_a_csv_keeps_the_progress_bar_setting(enabled: bool, tmp_path: Path) -> None:
    import datasets

    from trl_sft_kit import SFTRecipe
    from trl_sft_kit.data.sources import load_rows

    path = tmp_path / "rows.csv"
    path.write_text("text\nhello\nworld\n", encoding="utf-8")
    was = datasets.is_progress_bar_enabled()
    try:
        (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
        load_rows(SFTRecipe().dataset(path).dataset_specs[0])
        assert datasets.is_progress_bar_enabled() is enabled
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()
