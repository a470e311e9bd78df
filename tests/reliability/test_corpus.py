"""The bad-input corpus: every file in ``corpus/`` goes through the public API and gives the error that
``corpus/expectations.yaml`` names, with its file, line or row, field and fix; or is accepted when it must be.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from trl_sft_kit import SFTRecipe, errors
from trl_sft_kit.compile import Compiled
from trl_sft_kit.data.text_checks import CHARS_PER_TOKEN

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTATIONS: list[dict[str, Any]] = yaml.safe_load(
    (CORPUS / "expectations.yaml").read_text(encoding="utf-8")
)
HUGE_WORDS = 5000
MAX_LENGTH = 64


CHAT = [
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    {"messages": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}]},
]
DEEP = 5000  # levels: past the interpreter's recursion limit, where json.loads raises RecursionError


def _lines(rows: list[Any]) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def _made(name: str, folder: Path) -> Path:
    """The corpus inputs made at test time: an empty folder, a path that does not exist, a huge row, JSON
    nested past the recursion limit, links out of a data folder, and named pipes."""
    path = folder / name
    if name == "empty_dir":
        path.mkdir()
    elif name == "deep_nesting.jsonl":
        deep = '{"prompt": "Hi", "completion": "Hello", "meta": ' + "[" * DEEP + "]" * DEEP + "}"
        path.write_text(_lines([CHAT[0], deep]), encoding="utf-8")
    elif name == "deep_arguments.jsonl":
        arguments = '{"a": ' * DEEP + "1" + "}" * DEEP
        call = {"type": "function", "function": {"name": "add", "arguments": arguments}}
        turns = [
            {"role": "user", "content": "Add."},
            {"role": "assistant", "content": "", "tool_calls": [call]},
        ]
        turns += [{"role": "tool", "content": "1"}, {"role": "assistant", "content": "1."}]
        path.write_text(_lines([{"messages": turns}]), encoding="utf-8")
    elif name == "link_outside_dir":  # secrets.jsonl -> a file outside the folder: never read
        outside = folder / "elsewhere.jsonl"
        outside.write_text(_lines(CHAT * 3), encoding="utf-8")
        path.mkdir()
        (path / "train.jsonl").write_text(_lines(CHAT), encoding="utf-8")
        (path / "secrets.jsonl").symlink_to(outside)
        (path / "same.jsonl").symlink_to(path / "train.jsonl")  # a link that stays inside is read
    elif name == "fifo.jsonl":
        os.mkfifo(path)
    elif name == "fifo_in_dir":
        path.mkdir()
        (path / "train.jsonl").write_text(_lines(CHAT), encoding="utf-8")
        os.mkfifo(path / "pipe.jsonl")
    elif name == "huge_row.jsonl":
        huge = " ".join(f"word{n}" for n in range(HUGE_WORDS))
        rows = [
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
            {"messages": [{"role": "user", "content": huge}, {"role": "assistant", "content": huge}]},
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _run(case: dict[str, Any], path: Path, model: Path, tmp_path: Path) -> Compiled | SFTRecipe:
    if case.get("through") == "from_yaml":
        return SFTRecipe.from_yaml(path).validate()
    recipe = (
        SFTRecipe()
        .model(model)
        .dataset(path)
        .training(output_dir=str(tmp_path / "out"), max_length=MAX_LENGTH)
    )
    return recipe.compile()


def test_the_corpus_files_and_the_expectations_match() -> None:
    listed = {case["input"] for case in EXPECTATIONS if not case.get("made")}
    on_disk = {path.name for path in CORPUS.iterdir() if path.name != "expectations.yaml"}
    assert listed == on_disk
    assert len({case["name"] for case in EXPECTATIONS}) == len(EXPECTATIONS)


CASES = [
    pytest.param(case, id=case["name"], marks=[pytest.mark.xfail(strict=True, reason=case["pending"])])
    if case.get("pending")
    else pytest.param(case, id=case["name"])
    for case in EXPECTATIONS
]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_input_gives_its_error_with_file_place_field_and_fix(
    case: dict[str, Any], tmp_path: Path, tiny_model_dir: Path, tiny_model_dir_no_template: Path
) -> None:
    path = _made(case["input"], tmp_path) if case.get("made") else CORPUS / case["input"]
    models = {
        "tiny": tiny_model_dir,
        "no_template": tiny_model_dir_no_template,
        "missing": tmp_path / "no" / "such" / "model",
    }
    model = models[case.get("model", "tiny")]

    if case["error"] is None:
        compiled = _run(case, path, model, tmp_path)
        assert isinstance(compiled, Compiled)
        assert compiled.report.rows_kept == case["rows"]
        if "note" in case:  # what was left out is said in the report
            assert any(case["note"] in note for note in compiled.report.notes), compiled.report.notes
        if "truncated" in case:  # cut to max_length, and counted, not a crash or a silent loss
            tokens = compiled.tokenization
            assert tokens.rows_truncated == case["truncated"] and tokens.tokens_truncated > MAX_LENGTH
            # Both huge fields are first cut by characters, and every character cut is counted.
            field = len(" ".join(f"word{n}" for n in range(HUGE_WORDS)))
            assert tokens.rows_cut_by_chars == 1
            assert tokens.chars_cut == 2 * (field - MAX_LENGTH * CHARS_PER_TOKEN)
            dataset: Any = compiled.trainer.train_dataset
            assert max(len(ids) for ids in dataset["input_ids"]) <= MAX_LENGTH
        return

    expected = getattr(errors, case["error"])
    with pytest.raises(errors.SFTKitError) as caught:
        _run(case, path, model, tmp_path)
    error = caught.value
    message = str(error)
    assert type(error) is expected, message
    names = case.get("names", "input")
    if names == "input":
        assert path.name in message
    elif names == "model":
        assert str(model) in message
    if case.get("path"):
        assert str(getattr(error, "path", "")).endswith(path.name)
    for attribute in ("line", "row", "field", "key"):
        if attribute in case:
            assert getattr(error, attribute) == case[attribute], message
    if isinstance(error, errors.RowError):
        for attribute in ("line", "row", "field"):
            if attribute not in case and attribute != "row":
                assert getattr(error, attribute) is None, f"{attribute} not in the expectations: {message}"
    assert case["fix"] in message
