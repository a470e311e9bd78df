"""A hub dataset's config name reaches ``datasets.load_dataset``: each config trains its own rows.

No network: the hub dataset is put in the ``datasets`` cache exactly as a download leaves it (a prepared
builder per config under ``<cache>/<owner>___<name>/<config>/<version>/<hash>``), and offline mode makes
``load_dataset`` read it from there, as it does on a machine that downloaded it before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
from datasets.packaged_modules.json.json import Json

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data.sources import load_rows

REPO = "kit-tests/two-configs"
ROWS = {"short": "the first config's row", "long": "the second config's row"}


@pytest.fixture()
def cached_hub_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "datasets"
    owner, name = REPO.split("/")
    folder = f"{owner}___{name}"
    for config, text in ROWS.items():
        source = tmp_path / f"{config}.jsonl"
        source.write_text(json.dumps({"text": text}) + "\n", encoding="utf-8")
        builder = Json(
            cache_dir=str(cache),
            dataset_name=folder,
            config_name=config,
            data_files={"train": str(source)},
            hash="0f1e2d3c4b5a6978",  # where a download puts the commit it read
        )
        builder.download_and_prepare()
    # A download names the config folder by the config alone and the Arrow files by the dataset's name.
    for entry in (cache / folder).iterdir():
        entry.rename(entry.with_name(re.sub(r"-[0-9a-f]{16}$", "", entry.name)))
    for arrow in (cache / folder).rglob(f"{folder}-*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace(folder, name)))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.parametrize("config", sorted(ROWS))
def test_each_config_name_reads_its_own_rows(cached_hub_dataset: Path, config: str) -> None:
    recipe = SFTRecipe().dataset(REPO, config=config, revision="main").validate()
    rows = load_rows(recipe.dataset_specs[0])
    assert [row["text"] for row in rows.rows] == [ROWS[config]]


def test_a_config_name_round_trips_through_yaml(cached_hub_dataset: Path) -> None:
    recipe = SFTRecipe().dataset(REPO, config="long", revision="v1.0")
    again = SFTRecipe.from_yaml(recipe.to_yaml())
    assert again == recipe
    spec = again.dataset_specs[0]
    assert (spec.config, spec.revision) == ("long", "v1.0")
