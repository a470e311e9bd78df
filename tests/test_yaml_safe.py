"""The kit's one YAML loader: duplicate keys, alias bombs and deep nesting refused wherever YAML is read."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from trl_sft_kit import SFTRecipe
from trl_sft_kit.cli import _parse_override, main
from trl_sft_kit.config import load_yaml
from trl_sft_kit.distributed import launch
from trl_sft_kit.errors import ConfigError
from trl_sft_kit.yaml_safe import MAX_ALIAS_NODES, MAX_DEPTH, load_yaml_text, yaml_value


def billion_laughs(where: str = "lora:\n  target_modules: *i\n") -> str:
    """Nine levels of nine aliases each: a few hundred bytes that expand to 9**9 (387 million) strings."""
    names = "abcdefghi"
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["lol"] * 9) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n" + where


# ------------------------------------------------------------------------------------------ duplicate keys


def test_a_top_level_key_given_twice_is_refused_with_its_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model: {source: m}\nlearning_rate: 1.0e-4\nlora: {r: 8}\nlearning_rate: 2.0e-5\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    message = str(caught.value)
    assert "'learning_rate' twice" in message and "line 2 and line 4" in message and str(path) in message
    assert caught.value.key == "learning_rate" and caught.value.path == str(path)
    assert "Keep one of them" in message
    with pytest.raises(ConfigError, match="'learning_rate' twice"):
        SFTRecipe.from_yaml(path)


def test_a_nested_key_given_twice_is_refused_with_its_line() -> None:
    text = "lora:\n  r: 8\n  alpha: 16\n  r: 32\ntraining: {max_steps: 2}\n"
    with pytest.raises(ConfigError, match=r"key 'r' twice in one mapping \(line 2 and line 4\)") as caught:
        load_yaml(text)
    assert caught.value.key == "r"
    with pytest.raises(ConfigError, match=r"'max_steps' twice .*line 1 and line 1"):
        load_yaml_text("training: {max_steps: 2, max_steps: 3}")


def test_merge_keys_still_override_and_equal_keys_in_separate_mappings_are_fine() -> None:
    text = "base: &base {r: 8, alpha: 16}\nlora:\n  <<: *base\n  r: 4\nlist: [{a: 1}, {a: 1}]\n"
    assert load_yaml_text(text) == {
        "base": {"r": 8, "alpha": 16},
        "lora": {"r": 4, "alpha": 16},
        "list": [{"a": 1}, {"a": 1}],
    }
    for text in ("learning_rate: 1.0e-4\nlr: 2\n", "a: [1, 2]\nb: {c: &x 3, d: *x}\n", "x: null\n", ""):
        assert load_yaml_text(text) == yaml.safe_load(text)  # safe_load's meaning otherwise


# ------------------------------------------------------------------------------------------ aliases


@pytest.mark.parametrize(
    "where",
    ["lora:\n  target_modules: *i\n", "lora:\n  options: {x: *i}\n", "training:\n  optim_args: *i\n"],
)
def test_a_billion_laughs_document_is_refused_at_once_in_little_memory(where: str) -> None:
    text = billion_laughs(where)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=f"more than {MAX_ALIAS_NODES:,} values") as caught:
            load_yaml(text)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5 and peak < 5_000_000, (elapsed, peak)
    assert "Write the values out" in str(caught.value) and "line " in str(caught.value)


def test_ordinary_aliases_and_an_alias_back_into_its_own_collection() -> None:
    text = "mods: &m [q_proj, v_proj]\nlora: {target_modules: *m}\neval_lora: {target_modules: *m}\n"
    assert load_yaml_text(text)["lora"] == {"target_modules": ["q_proj", "v_proj"]}
    with pytest.raises(ConfigError, match=r"the alias \*a on line 1 refers to the collection it sits in"):
        load_yaml_text("a: &a [1, *a]\n")


# ------------------------------------------------------------------------------------------ nesting


def test_deep_nesting_is_a_config_error_not_a_recursion_error() -> None:
    for depth in (MAX_DEPTH, 5_000):
        with pytest.raises(ConfigError, match=f"nest more than {MAX_DEPTH} deep"):
            load_yaml("training:\n  optim_args: " + "[" * depth + "]" * depth + "\n")
    assert load_yaml_text("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None  # exactly the limit is read
    deep = "a: &a " + "[" * 60 + "]" * 60 + "\nb: [" + "[" * 45 + "*a" + "]" * 45 + "]\n"
    with pytest.raises(ConfigError, match="nest more than"):  # the depth an alias brings counts
        load_yaml_text(deep)


# ------------------------------------------------------------------------------------------ every reader


def test_the_cli_set_values_use_the_same_loader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse_override("lora.target_modules=[q_proj, v_proj]") == (
        "lora.target_modules",
        ["q_proj", "v_proj"],
    )
    assert _parse_override("name=a: b: c") == ("name", "a: b: c")  # not YAML: stays text
    assert _parse_override("max_steps=") == ("max_steps", None)
    with pytest.raises(ConfigError, match=r"--set training gives the key 'max_steps' twice"):
        _parse_override("training={max_steps: 2, max_steps: 3}")
    with pytest.raises(ConfigError, match="more than"):
        _parse_override("training.optim_args=" + billion_laughs("").replace("\n", ", ").join("{}"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {source: m}\ndataset: {source: d.jsonl}\n")
    code = main(["train", str(recipe), "--set", "lora={r: 8, r: 16}"])
    assert code != 0 and "the key 'r' twice" in capsys.readouterr().err


def test_the_distributed_launcher_reads_overrides_with_the_same_loader(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {source: m}\ndataset: {source: d.jsonl}\ndistributed: ddp\n")
    with pytest.raises(ConfigError, match=r"the override lora gives the key 'r' twice"):
        launch(recipe, ["lora={r: 8, r: 16}"], dry_run=True)
    with pytest.raises(ConfigError, match=f"nest more than {MAX_DEPTH} deep"):
        launch(recipe, ["training.optim_args=" + "[" * 200 + "]" * 200], dry_run=True)
    assert yaml_value("[1, 2]", source="x") == [1, 2]
