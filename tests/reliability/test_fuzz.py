"""Fuzzing: whatever rows, files or YAML a user gives, only the kit's own errors escape (or it works).

Arbitrary JSON rows and whole junk datasets are written to a ``.jsonl`` file (with broken lines and stray
bytes among them) and read through the data stage and ``SFTRecipe.validate()``; arbitrary structures are
written as YAML, and arbitrary text is read as YAML, through ``SFTRecipe.from_yaml`` and ``from_dict``.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trl_sft_kit import SFTRecipe
from trl_sft_kit.config import LEGACY_KEYS, SECTIONS
from trl_sft_kit.data import convert_rows, load_rows
from trl_sft_kit.errors import SFTKitError
from trl_sft_kit.formats import FormatOptions
from trl_sft_kit.specs import DatasetSpec
from trl_sft_kit.testing.strategies import json_values, junk, junk_datasets

SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """One scratch folder for every example (hypothesis reruns a test many times within one fixture)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as name:
        yield Path(name)


# ------------------------------------------------------------------------------------------ data files

_LINES = st.one_of(
    junk().map(lambda row: json.dumps(row, ensure_ascii=False)),  # any JSON value, on one line
    st.text(max_size=30),  # not JSON, or JSON of the wrong kind
    st.sampled_from(
        ["", "   ", "{", "[1, 2", '{"messages": [', "null", "\ufeff{}", '{"text": "a"}{"text": "b"}']
    ),
)


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """A ``.jsonl`` file's bytes: junk datasets, broken lines, now and then a BOM or bytes not in UTF-8."""
    if draw(st.booleans()):
        lines = [json.dumps(row, ensure_ascii=False) for row in draw(junk_datasets())]
    else:
        lines = draw(st.lists(_LINES, min_size=0, max_size=6))
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    prefix = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xff\xfe"]))
    suffix = draw(st.sampled_from([b"", b"\n", b"\r\n", b"\n\xe9\n", b"\x00"]))
    return prefix + data + suffix


def _data_stage(path: Path, *, skip: bool, chat: bool) -> None:
    spec = DatasetSpec(str(path), on_bad_rows="skip" if skip else "error")
    raw = load_rows(spec)
    prepared = convert_rows(raw, spec, FormatOptions(chat=chat))
    report = prepared.report
    assert report.rows_read == len(raw) == report.rows_kept + len(report.skipped)
    assert len(prepared.rows) == report.rows_kept > 0


@SETTINGS
@given(
    content=jsonl_files(), skip=st.booleans(), chat=st.booleans(), suffix=st.sampled_from([".jsonl", ".json"])
)
def test_any_jsonl_file_gives_rows_or_a_kit_error(
    folder: Path, content: bytes, skip: bool, chat: bool, suffix: str
) -> None:
    path = folder / f"data{suffix}"
    path.write_bytes(content)
    with contextlib.suppress(SFTKitError):
        _data_stage(path, skip=skip, chat=chat)
    with contextlib.suppress(SFTKitError):
        SFTRecipe().dataset(str(path), on_bad_rows="skip" if skip else "error").validate()


@SETTINGS
@given(rows=junk_datasets(), loss=st.sampled_from(["auto", "all", "completion_only", "assistant_only"]))
def test_any_inline_rows_give_a_recipe_or_a_kit_error(rows: list[Any], loss: str) -> None:
    with contextlib.suppress(SFTKitError):
        SFTRecipe().dataset(rows).loss(loss).validate()


@SETTINGS
@given(value=json_values())
def test_any_json_document_in_a_json_file_gives_rows_or_a_kit_error(folder: Path, value: Any) -> None:
    path = folder / "document.json"
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(SFTKitError):
        _data_stage(path, skip=False, chat=True)


# ------------------------------------------------------------------------------------------ YAML

_SUBKEYS = (
    "source",
    "rows",
    "format",
    "split",
    "text_field",
    "columns",
    "on_bad_rows",
    "r",
    "alpha",
    "dropout",
    "target_modules",
    "options",
    "mode",
    "bits",
    "quant_type",
    "strategy",
    "overflow",
    "eval",
    "turns",
    "eos",
    "pad",
    "dtype",
    "revision",
    "tokenizer",
    "trust_remote_code",
    "trl_sft",
)
_CONFIG_KEYS = (
    *SECTIONS,
    *LEGACY_KEYS,
    *_SUBKEYS,
    "stages",
    "stage_configs",
    "max_steps",
    "learning_rate",
    "num_train_epochs",
    "output_dir",
    "seed",
    "lr",
    "epochs",
    "batch_size",
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["4bit", "8bit", "ffd", "bfd", "auto", "all", "assistant_only", "1e-4", "qwen2_5", "chats.jsonl"]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_CONFIG_KEYS), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=16,
)
CONFIGS = st.one_of(
    st.dictionaries(st.sampled_from(_CONFIG_KEYS), _VALUES, max_size=6),
    _VALUES,
    st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none()), _VALUES, max_size=2),
)


def _check_recipe(recipe: SFTRecipe) -> None:
    """A recipe that was built can be validated, explained and written, or says why not in the kit's terms."""
    for step in (recipe.validate, recipe.explain, recipe.to_yaml):
        with contextlib.suppress(SFTKitError):
            step()


@SETTINGS
@given(config=CONFIGS)
def test_any_yaml_structure_gives_a_recipe_or_a_config_error(config: Any) -> None:
    try:
        text = yaml.safe_dump(config, allow_unicode=True)
    except yaml.YAMLError:
        return
    for build in (lambda: SFTRecipe.from_yaml(text), lambda: SFTRecipe.from_dict(config)):
        try:
            recipe = build()
        except SFTKitError:
            continue
        _check_recipe(recipe)


@SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=80),
        st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"%@`#,? \n\t0.1")), max_size=60),
        st.lists(st.sampled_from(_CONFIG_KEYS), min_size=1, max_size=4).map(
            lambda keys: "\n".join(f"{key}: {key}" for key in keys)
        ),
    )
)
def test_any_text_read_as_yaml_gives_a_recipe_or_a_config_error(folder: Path, text: str) -> None:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for source in (text, path):
        try:
            recipe = SFTRecipe.from_yaml(source)
        except SFTKitError:
            continue
        _check_recipe(recipe)


def test_the_fuzz_strategies_reach_both_outcomes() -> None:
    """Sanity: the YAML strategy makes working recipes too, not only errors."""
    assert SFTRecipe.from_yaml(yaml.safe_dump({"lora": {"r": 8}, "packing": "ffd"})).lora_spec is not None
    assert not math.isnan(SFTRecipe.from_dict({"lr": 1e-4}).training_fields["learning_rate"])
