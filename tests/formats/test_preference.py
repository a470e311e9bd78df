"""Preference data: refused by ``format="auto"``, trained on its chosen answers with ``preference_chosen``."""

from __future__ import annotations

from typing import Any

import pytest

from trl_sft_kit.data import DatasetReport, convert_rows, load_rows
from trl_sft_kit.errors import DatasetError, RowError
from trl_sft_kit.formats import PREFERENCE_FORMAT, FormatOptions, RowExcludedError, get_format
from trl_sft_kit.specs import DatasetSpec

PLAIN = FormatOptions()
PREFERENCE = get_format(PREFERENCE_FORMAT)
USER = {"role": "user", "content": "Colour of the sky?"}
BLUE = {"role": "assistant", "content": "Blue."}
GREEN = {"role": "assistant", "content": "Green."}


def convert(row: dict[str, Any]) -> dict[str, Any]:
    return PREFERENCE.convert(row, PLAIN)


def test_the_name_is_the_one_the_refusal_gives() -> None:
    assert PREFERENCE_FORMAT == "preference_chosen"
    assert f"format={PREFERENCE_FORMAT!r}" in PREFERENCE.auto_refusal


def test_explicit_prompt_strings() -> None:
    row = {"prompt": "Colour of the sky?", "chosen": "Blue.", "rejected": "Green.", "score": 3}
    assert convert(row) == {"prompt": "Colour of the sky?", "completion": "Blue."}


def test_explicit_prompt_messages() -> None:
    row = {"prompt": [USER], "chosen": [BLUE], "rejected": [GREEN]}
    assert convert(row) == {"prompt": [USER], "completion": [BLUE]}
    # A string prompt with message answers, or the other way round, becomes messages on both sides.
    assert convert({**row, "prompt": USER["content"]}) == {"prompt": [USER], "completion": [BLUE]}
    assert convert({"prompt": [USER], "chosen": "Blue.", "rejected": "Green."}) == {
        "prompt": [USER],
        "completion": [BLUE],
    }


def test_implicit_prompt_in_conversations_is_split_where_they_part() -> None:
    system = {"role": "system", "content": "Be brief."}
    row = {"chosen": [system, USER, BLUE], "rejected": [system, USER, GREEN]}
    assert convert(row) == {"prompt": [system, USER], "completion": [BLUE]}
    # A prompt column next to whole conversations (UltraFeedback) is already inside them.
    assert convert({**row, "prompt": USER["content"]}) == {"prompt": [system, USER], "completion": [BLUE]}
    # Multi-turn: the split is where the two conversations part.
    follow = {"role": "user", "content": "And at night?"}
    black = {"role": "assistant", "content": "Black."}
    row = {"chosen": [USER, BLUE, follow, black], "rejected": [USER, BLUE, follow, GREEN]}
    assert convert(row) == {"prompt": [USER, BLUE, follow], "completion": [black]}


def test_implicit_prompt_without_a_shared_beginning_splits_before_the_last_answer() -> None:
    row = {"chosen": [USER, BLUE], "rejected": [{"role": "user", "content": "Other?"}, GREEN]}
    assert convert(row) == {"prompt": [USER], "completion": [BLUE]}
    assert convert({"chosen": [USER, BLUE], "rejected": "junk"}) == {"prompt": [USER], "completion": [BLUE]}


def test_implicit_prompt_in_texts_is_split_at_a_word_boundary() -> None:
    row = {
        "chosen": "\n\nHuman: Colour of the sky?\n\nAssistant: It is blue.",
        "rejected": "\n\nHuman: Colour of the sky?\n\nAssistant: It is black.",
    }
    assert convert(row) == {
        "prompt": "\n\nHuman: Colour of the sky?\n\nAssistant: It is",
        "completion": " blue.",
    }
    row = {"chosen": "Q: sky? A: Blue.", "rejected": "Q: sky? A: Green."}
    assert convert(row) == {"prompt": "Q: sky? A:", "completion": " Blue."}


def test_kto_rows_labelled_true_are_kept_and_false_ones_left_out() -> None:
    assert convert({"prompt": "Sky?", "completion": "Blue.", "label": True}) == {
        "prompt": "Sky?",
        "completion": "Blue.",
    }
    assert convert({"prompt": [USER], "completion": [BLUE], "label": True}) == {
        "prompt": [USER],
        "completion": [BLUE],
    }
    with pytest.raises(RowExcludedError) as caught:
        convert({"prompt": "Sky?", "completion": "Green.", "label": False})
    assert caught.value.field == "label"
    assert isinstance(caught.value, RowError)


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"prompt": "p", "completion": "c", "label": None}, "label", "true or false"),
        ({"prompt": "p", "completion": "c", "label": "yes"}, "label", "true or false"),
        ({"chosen": "Same.", "rejected": "Same."}, "chosen", "add a 'prompt' field"),
        ({"chosen": "Blue.", "rejected": "Green."}, "chosen", "add a 'prompt' field"),
        ({"chosen": "Blue.", "rejected": None}, "rejected", "must both hold"),
        ({"chosen": [BLUE], "rejected": [GREEN]}, "chosen", "no 'prompt'"),
        ({"chosen": [USER], "rejected": [GREEN]}, "chosen", "no assistant message"),
        ({"chosen": 3, "rejected": "x", "prompt": "p"}, "chosen", "string or a list of messages"),
        ({"chosen": "", "rejected": "x", "prompt": "p"}, "chosen", "empty"),
        (
            {"chosen": [{"role": "bot", "content": "x"}], "rejected": [], "prompt": "p"},
            "chosen[0].role",
            "role",
        ),
        ({"chosen": "Blue.", "rejected": "x", "prompt": 5}, "prompt", "string"),
        ({"question": "q"}, None, "neither"),
    ],
)
def test_bad_preference_rows_name_their_field(row: dict[str, Any], field: str | None, words: str) -> None:
    with pytest.raises(RowError) as caught:
        convert(row)
    assert not isinstance(caught.value, RowExcludedError)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_kto_rows_labelled_false_are_counted_even_without_skip() -> None:
    rows = [
        {"prompt": "Sky?", "completion": "Blue.", "label": True},
        {"prompt": "Sky?", "completion": "Green.", "label": False},
        {"prompt": "Grass?", "completion": "Green.", "label": True},
    ]
    spec = DatasetSpec(rows, format=PREFERENCE_FORMAT)  # on_bad_rows="error"
    prepared = convert_rows(load_rows(spec), spec, PLAIN)
    report: DatasetReport = prepared.report
    assert prepared.rows == [
        {"prompt": "Sky?", "completion": "Blue."},
        {"prompt": "Grass?", "completion": "Green."},
    ]
    assert (report.rows_read, report.rows_kept, report.rows_excluded, report.rows_bad) == (3, 2, 1, 0)
    (left_out,) = report.skipped
    assert (left_out.where, left_out.field, left_out.bad) == ("row 1", "label", False)
    summary = report.summary()
    assert "1 skipped (1 left out by the format, 0 bad)" in summary
    assert "skipped row 1, field 'label': the KTO label is false" in summary
    assert "format 'preference_chosen' (chosen by the recipe)" in summary


def test_only_rows_labelled_false_is_an_error_saying_so() -> None:
    spec = DatasetSpec([{"prompt": "Sky?", "completion": "Green.", "label": False}], format=PREFERENCE_FORMAT)
    with pytest.raises(DatasetError, match="every one of the 1 rows was bad or left out by the format"):
        convert_rows(load_rows(spec), spec, PLAIN)
