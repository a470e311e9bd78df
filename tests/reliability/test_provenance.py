"""run.json records the data that trained: each source's SHA-256 as it was read at compile(), and a file
that changes while it is read is refused (issue 14)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data.provenance import check_unchanged, source_fingerprints
from trl_sft_kit.errors import DataSourceError
from trl_sft_kit.testing import write_sample_dataset


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_json_records_the_bytes_compiled_not_the_file_as_it_is_later(
    tmp_path: Path, tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    data = write_sample_dataset(tmp_path / "chat.jsonl", "messages", 8)
    compiled_hash = _sha(data)
    compiled = (
        SFTRecipe()
        .model(str(tiny_model_dir))
        .dataset(str(data))
        .training(**{**fast_training, "max_steps": 1})
        .compile()
    )
    write_sample_dataset(data, "messages", 8, seed=5)  # rewritten after compile(), before train()
    assert _sha(data) != compiled_hash
    result = compiled.train()
    info = json.loads((Path(result.output_dir) / "run.json").read_text(encoding="utf-8"))
    (source,) = info["data_fingerprint"]["sources"]
    assert source["path"] == str(data) and source["sha256"] == compiled_hash


def test_a_source_that_changes_while_it_is_read_is_refused(tmp_path: Path) -> None:
    data = write_sample_dataset(tmp_path / "chat.jsonl", "messages", 4)
    specs = SFTRecipe().dataset(str(data)).dataset_specs
    before = source_fingerprints(specs)
    check_unchanged(before, source_fingerprints(specs))  # unchanged: nothing to say
    with data.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"messages": [{"role": "user", "content": "late"}]}) + "\n")
    with pytest.raises(DataSourceError, match="changed while it was read") as info:
        check_unchanged(before, source_fingerprints(specs))
    assert info.value.path == str(data)
