"""Tests for ``trl_sft_kit.sft_fields``: the SFTConfig snapshot against the installed TRL; coercion."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.sft_fields import (
    _SNAPSHOT,
    FIELD_ALIASES,
    OWNED_FIELDS,
    SNAPSHOT_TRL_VERSION,
    coerce_field_value,
    installed_trl_version,
    resolve_training_fields,
    sftconfig_fields,
)

REPO = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter so that this test process never imports trl (which takes seconds and would
# switch ``sftconfig_fields`` from the snapshot to the live dataclass).
LIVE_FIELDS_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, types, typing
    import trl

    def members(annotation):
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            return [m for a in typing.get_args(annotation) for m in members(a)]
        return [annotation.__name__ if isinstance(annotation, type) else str(annotation)]

    out = {}
    for field in dataclasses.fields(trl.SFTConfig):
        if not field.init:
            continue
        default = field.default
        scalar = type(default).__name__ if isinstance(default, (bool, int, float, str)) else ""
        out[field.name] = {"default_kind": scalar, "types": members(field.type)}
    print(json.dumps({"version": trl.__version__, "fields": out}))
    """
)


@pytest.fixture(scope="module")
def live_sftconfig() -> dict[str, Any]:
    """The installed TRL's SFTConfig init fields, read in a subprocess."""
    result = subprocess.run(
        [sys.executable, "-c", LIVE_FIELDS_SCRIPT],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last_line = result.stdout.strip().splitlines()[-1]
    data: dict[str, Any] = json.loads(last_line)
    return data


def expected_kind(info: dict[str, Any]) -> str:
    """The kind ``_SNAPSHOT`` should record: the broadest scalar type the annotation takes, when the default
    is a plain scalar; else ``""``."""
    if not info["default_kind"]:
        return ""
    for kind in ("str", "float", "int", "bool"):
        if kind in info["types"]:
            return kind
    return ""


# At another TRL (the lowest-TRL nox session) the snapshot is not used: fields are read live instead.
same_trl = pytest.mark.skipif(
    installed_trl_version() != SNAPSHOT_TRL_VERSION,
    reason=f"the snapshot is of TRL {SNAPSHOT_TRL_VERSION}; installed: {installed_trl_version()}",
)


@same_trl
def test_snapshot_records_the_trl_it_was_taken_from(live_sftconfig: dict[str, Any]) -> None:
    assert live_sftconfig["version"] == SNAPSHOT_TRL_VERSION


@same_trl
def test_snapshot_names_equal_the_installed_sftconfig(live_sftconfig: dict[str, Any]) -> None:
    live = set(live_sftconfig["fields"])
    snapshot = set(_SNAPSHOT)
    assert not live - snapshot, f"fields TRL {live_sftconfig['version']} added: {sorted(live - snapshot)}"
    assert not snapshot - live, f"fields TRL {live_sftconfig['version']} dropped: {sorted(snapshot - live)}"


@same_trl
def test_snapshot_kinds_match_the_installed_sftconfig(live_sftconfig: dict[str, Any]) -> None:
    wrong = {
        name: (kind, expected_kind(live_sftconfig["fields"][name]))
        for name, kind in _SNAPSHOT.items()
        if name in live_sftconfig["fields"] and kind != expected_kind(live_sftconfig["fields"][name])
    }
    assert not wrong, f"snapshot kind vs the kind TRL's annotation implies: {wrong}"


@same_trl
def test_sftconfig_fields_is_the_snapshot_or_its_live_equal() -> None:
    assert set(sftconfig_fields()) == set(_SNAPSHOT)
    fields = sftconfig_fields()
    fields["made_up"] = "int"
    assert "made_up" not in sftconfig_fields()  # a copy is returned


FIELDS_BY_VERSION_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from trl_sft_kit import sft_fields

    sft_fields._SNAPSHOT["only_in_the_snapshot"] = "int"  # tells which of the two was read
    sft_fields.SNAPSHOT_TRL_VERSION = sys.argv[1]
    fields = sft_fields.sftconfig_fields()
    print(json.dumps({"trl_imported": "trl" in sys.modules, "snapshot": "only_in_the_snapshot" in fields,
                      "has_max_length": "max_length" in fields}))
    """
)


@pytest.mark.parametrize("snapshot_version", ["same", "0.0.1"])
def test_fields_are_read_live_when_the_installed_trl_is_another_version(snapshot_version: str) -> None:
    version = installed_trl_version() if snapshot_version == "same" else snapshot_version
    result = subprocess.run(
        [sys.executable, "-c", FIELDS_BY_VERSION_SCRIPT, str(version)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["has_max_length"]
    if snapshot_version == "same":  # the snapshot, and TRL is not imported to build a recipe
        assert got == {"trl_imported": False, "snapshot": True, "has_max_length": True}
    else:  # another TRL: its own fields, read live
        assert got == {"trl_imported": True, "snapshot": False, "has_max_length": True}


def test_aliases_and_owned_fields_name_real_fields() -> None:
    fields = sftconfig_fields()
    for alias, target in FIELD_ALIASES.items():
        assert target in fields, alias
        assert target not in OWNED_FIELDS, alias
    for name, method in OWNED_FIELDS.items():
        assert name in fields, name
        assert method.startswith("."), name


# ------------------------------------------------------------------------------------------ coercion


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("learning_rate", "5e-5", 5e-5),
        ("learning_rate", " 2e-4 ", 2e-4),
        ("learning_rate", "0.001", 0.001),
        ("learning_rate", 3e-4, 3e-4),
        ("learning_rate", 1, 1),
        ("num_train_epochs", "3", 3),
        ("num_train_epochs", "3.0", 3.0),
        ("num_train_epochs", "1e1", 10.0),
        ("warmup_steps", "0.1", 0.1),
        ("eval_delay", "0.5", 0.5),
        ("max_length", "512", 512),
        ("max_length", "1e3", 1000),
        ("max_length", 512.0, 512),
        ("max_length", None, None),
        ("seed", "-1", -1),
        ("seed", 12345678901234567890, 12345678901234567890),
        ("bf16", True, True),
        ("do_eval", "yes", True),
        ("do_eval", "Off", False),
        ("do_eval", "0", False),
        ("do_eval", False, False),
        ("optim", "adamw_torch", "adamw_torch"),
        ("report_to", ["wandb"], ["wandb"]),
        ("pad_to_multiple_of", 8, 8),
        ("lr_scheduler_kwargs", {"a": 1}, {"a": 1}),
        ("output_dir", Path("out") / "run", str(Path("out") / "run")),
        ("save_total_limit", "2", "2"),
    ],
)
def test_coerce_field_value(name: str, value: Any, expected: Any) -> None:
    result = coerce_field_value(name, value)
    assert result == expected
    assert type(result) is type(expected)
    assert coerce_field_value(name, result) == result  # idempotent


@pytest.mark.parametrize(
    ("name", "value", "wanted"),
    [
        ("learning_rate", "fast", "number"),
        ("learning_rate", True, "number"),
        ("learning_rate", [1e-4], "number"),
        ("max_length", True, "number"),
        ("max_length", "512.5", "whole number"),
        ("max_length", 512.5, "whole number"),
        ("seed", "abc", "number"),
        ("do_eval", "maybe", "true or false"),
        ("do_eval", 1, "true or false"),
    ],
)
def test_coerce_field_value_refuses(name: str, value: Any, wanted: str) -> None:
    with pytest.raises(RecipeError) as info:
        coerce_field_value(name, value)
    assert repr(name) in str(info.value)
    assert wanted in str(info.value)
    assert repr(value) in str(info.value)


def test_coerce_field_value_takes_an_explicit_kind() -> None:
    assert coerce_field_value("anything", "7", kind="int") == 7
    assert coerce_field_value("anything", "7", kind="") == "7"
    assert coerce_field_value("unknown_field", "7") == "7"


def test_resolve_training_fields_maps_aliases_and_coerces() -> None:
    fields = {"lr": "5e-5", "epochs": 2, "batch_size": "4", "max_seq_length": 256, "seed": 1}
    assert resolve_training_fields(fields) == {
        "learning_rate": 5e-5,
        "num_train_epochs": 2,
        "per_device_train_batch_size": 4,
        "max_length": 256,
        "seed": 1,
    }
    assert fields["lr"] == "5e-5"  # the input is not changed


def test_resolve_training_fields_collects_every_problem() -> None:
    with pytest.raises(RecipeError) as info:
        resolve_training_fields(
            {"learning_rat": 1, "packing": True, "lr": 1, "learning_rate": 2, "max_seq_length": "long"}
        )
    problems = info.value.problems
    assert len(problems) == 4
    assert "Did you mean 'learning_rate'?" in problems[0]
    assert ".packing(strategy)" in problems[1]
    assert "given twice" in problems[2]
    assert "'max_seq_length' stands for 'max_length'" in problems[3]
