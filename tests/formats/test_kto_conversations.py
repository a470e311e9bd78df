"""LLaMA-Factory's KTO layout (a conversation beside a true/false ``label``, as its ``kto_en_demo.json``) is
preference data: ``format="auto"`` refuses it, saying what the label means; ``preference_chosen`` trains
only the answers labelled true and counts the others (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.data import load_rows
from trl_sft_kit.data.prepare import convert_rows
from trl_sft_kit.errors import DatasetFormatError, RowError
from trl_sft_kit.formats import FormatOptions


def _messages(n: int, label: object) -> dict[str, object]:
    return {
        "messages": [
            {"content": f"Question {n}?", "role": "user"},
            {"content": f"Answer {n}.", "role": "assistant"},
        ],
        "label": label,
    }


def _sharegpt(n: int, label: object) -> dict[str, object]:
    return {
        "conversations": [
            {"from": "human", "value": f"Question {n}?"},
            {"from": "gpt", "value": f"Answer {n}."},
        ],
        "label": label,
    }


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")  # a JSON array, as LLaMA-Factory ships it
    return path


@pytest.mark.parametrize("layout", [_messages, _sharegpt], ids=["messages", "sharegpt"])
def test_auto_refuses_kto_conversations_and_says_what_the_label_means(tmp_path: Path, layout: object) -> None:
    data = _write(tmp_path / "kto_en_demo.json", [layout(n, n % 2 == 0) for n in range(6)])  # type: ignore[operator]
    spec = SFTRecipe().dataset(str(data)).dataset_specs[0]
    with pytest.raises(DatasetFormatError) as info:
        convert_rows(load_rows(spec), spec, FormatOptions(chat=True))
    message = str(info.value)
    assert str(data) in message and "undesirable (false)" in message and "preference_chosen" in message


@pytest.mark.parametrize("layout", [_messages, _sharegpt], ids=["messages", "sharegpt"])
def test_preference_chosen_trains_only_the_answers_labelled_true(tmp_path: Path, layout: object) -> None:
    data = _write(tmp_path / "kto_en_demo.json", [layout(n, n % 3 != 0) for n in range(6)])  # type: ignore[operator]
    spec = SFTRecipe().dataset(str(data), format="preference_chosen").dataset_specs[0]
    prepared = convert_rows(load_rows(spec), spec, FormatOptions(chat=True))
    kept = [row["completion"][0]["content"] for row in prepared.rows]
    assert kept == ["Answer 1.", "Answer 2.", "Answer 4.", "Answer 5."]  # rows 0 and 3 are labelled false
    assert prepared.rows[0]["prompt"][-1]["content"] == "Question 1?"
    report = prepared.report
    assert (report.rows_read, report.rows_kept, report.rows_excluded) == (6, 4, 2)
    assert all(row.field == "label" for row in report.skipped)


def test_a_label_that_is_not_true_or_false_is_a_row_error(tmp_path: Path) -> None:
    data = tmp_path / "kto.jsonl"
    rows = [_messages(0, True), _messages(1, "yes")]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    spec = SFTRecipe().dataset(str(data), format="preference_chosen").dataset_specs[0]
    with pytest.raises(RowError) as info:
        convert_rows(load_rows(spec), spec, FormatOptions(chat=True))
    assert (info.value.path, info.value.line, info.value.field) == (str(data), 2, "label")
