"""Format detection: each built-in format is recognised as itself, on rows sampled across the whole set."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit.data import convert_rows, load_rows, prepare_dataset
from trl_sft_kit.errors import DatasetError, DatasetFormatError, PluginError, RowError
from trl_sft_kit.formats import (
    FormatMatch,
    FormatOptions,
    detect_format,
    format_names,
    get_format,
    register_format,
    unregister_format,
)
from trl_sft_kit.formats.detect import SAMPLE_SIZE, sample_indices
from trl_sft_kit.specs import DatasetSpec
from trl_sft_kit.testing import sample_rows

REPO = Path(__file__).resolve().parents[2]
BUILTIN_NAMES = (
    "messages",
    "alpaca",
    "instruction_response",
    "prompt_completion",
    "text",
    "sharegpt",
    "preference_chosen",
)

# (expected format, text_field, rows): one or two rows of every shape each built-in format accepts.
EXAMPLES: list[tuple[str, str, list[dict[str, Any]]]] = [
    (
        "messages",
        "text",
        [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}],
    ),
    (
        "messages",
        "text",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                    {"role": "assistant", "content": "Yo"},
                ],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            }
        ],
    ),
    ("alpaca", "text", [{"instruction": "Add.", "input": "1 2", "output": "3"}]),
    ("alpaca", "text", [{"instruction": "Say hi.", "output": "Hi"}]),
    (
        "alpaca",
        "text",
        [{"instruction": "Say hi.", "input": "", "output": "Hi", "system": "S", "history": []}],
    ),
    ("instruction_response", "text", [{"instruction": "Say hi.", "response": "Hi"}]),
    ("instruction_response", "text", [{"question": "Capital of France?", "answer": "Paris"}]),
    ("instruction_response", "text", [{"prompt": "Say hi.", "response": "Hi"}]),
    ("instruction_response", "text", [{"query": "2+2?", "response": "4"}]),
    ("prompt_completion", "text", [{"prompt": "The sky is", "completion": " blue."}]),
    (
        "prompt_completion",
        "text",
        [
            {
                "prompt": [{"role": "user", "content": "Colour of the sky?"}],
                "completion": [{"role": "assistant", "content": "Blue."}],
            }
        ],
    ),
    ("text", "text", [{"text": "Once upon a time."}, {"text": "The end.", "id": 3}]),
    ("text", "body", [{"body": "Once upon a time."}]),
    (
        "sharegpt",
        "text",
        [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}],
    ),
    (
        "sharegpt",
        "text",
        [
            {
                "conversations": [
                    {"from": "human", "value": "Weather in Paris?"},
                    {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
                    {"from": "observation", "value": "sunny"},
                    {"from": "gpt", "value": "Sunny."},
                ],
                "system": "Be brief.",
                "tools": '[{"name": "weather"}]',
            }
        ],
    ),
    (
        "messages",
        "text",
        [
            {
                "messages": [
                    {"role": "user", "content": "Weather in Paris?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                    {"role": "assistant", "content": "Sunny.", "reasoning_content": "Easy."},
                ]
            }
        ],
    ),
]


def _ids(example: tuple[str, str, list[dict[str, Any]]]) -> str:
    name, field, rows = example
    return f"{name}:{field}:{'+'.join(rows[0])}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[_ids(example) for example in EXAMPLES])
def test_each_builtin_shape_is_detected_as_its_format_and_no_other(
    example: tuple[str, str, list[dict[str, Any]]],
) -> None:
    expected, text_field, rows = example
    options = FormatOptions(text_field=text_field)
    detection = detect_format(rows, len(rows), options)
    assert detection.format == expected
    assert detection.canonical == get_format(expected).canonical
    assert not detection.forced
    assert detection.sampled_rows == detection.total_rows == len(rows)
    # The winner is strictly better than every other built-in on every row: no near-ties by accident.
    for row in rows:
        best = get_format(expected).match(row, options)
        assert best
        for name in BUILTIN_NAMES:
            if name != expected:
                assert get_format(name).match(row, options).score < best.score, name


@pytest.mark.parametrize(
    ("sample_format", "expected"),
    [
        ("messages", "messages"),
        ("alpaca", "alpaca"),
        ("instruction_response", "instruction_response"),
        ("prompt_completion", "prompt_completion"),
        ("text", "text"),
        ("sharegpt", "sharegpt"),
    ],
)
def test_sample_datasets_are_detected_through_the_data_pipeline(
    sample_file: Any, sample_format: str, expected: str
) -> None:
    path = sample_file(sample_format, 40)
    spec = DatasetSpec(str(path))
    prepared = convert_rows(load_rows(spec), spec, FormatOptions())
    assert prepared.report.format == expected
    assert prepared.report.rows_read == prepared.report.rows_kept == 40
    assert f"format {expected!r}" in prepared.report.detection


def test_prepare_dataset_detects_and_builds_a_dataset(sample_file: Any) -> None:
    dataset, report = prepare_dataset(DatasetSpec(str(sample_file("alpaca", 12))), chat=True)
    assert report.format == "alpaca"
    assert report.canonical == "prompt_completion"
    assert dataset.column_names == ["prompt", "completion"]
    assert len(dataset) == 12
    assert dataset[0]["completion"][0]["role"] == "assistant"


def test_custom_text_field_is_detected_only_with_that_option() -> None:
    rows = [{"body": "Some text."}]
    assert detect_format(rows, 1, FormatOptions(text_field="body")).format == "text"
    with pytest.raises(DatasetFormatError, match="fits no known format"):
        detect_format(rows, 1, FormatOptions())


def test_text_field_of_the_spec_reaches_detection_and_conversion() -> None:
    spec = DatasetSpec([{"body": "One."}, {"body": "Two."}], text_field="body")
    prepared = convert_rows(load_rows(spec), spec, FormatOptions(text_field="body"))
    assert prepared.report.format == "text"
    assert prepared.rows == [{"text": "One."}, {"text": "Two."}]


# -------------------------------------------------------------------------------------- sampling


def test_sample_indices_cover_head_and_tail_evenly() -> None:
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    indices = sample_indices(1000)
    assert len(indices) == SAMPLE_SIZE
    assert indices[0] == 0
    assert indices[-1] == 999
    assert indices == sorted(set(indices))
    gaps = [b - a for a, b in itertools.pairwise(indices)]
    assert max(gaps) - min(gaps) <= 1
    assert sum(1 for index in indices if index >= 900) >= 5


def test_mixed_formats_near_the_end_of_a_large_file_are_found(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    alpaca = sample_rows("alpaca", 900)
    text = sample_rows("text", 100)
    path.write_text("".join(json.dumps(row) + "\n" for row in alpaca + text), encoding="utf-8")
    spec = DatasetSpec(str(path))
    with pytest.raises(DatasetFormatError) as caught:
        convert_rows(load_rows(spec), spec, FormatOptions())
    message = str(caught.value)
    sampled = sample_indices(1000)
    n_alpaca = sum(1 for index in sampled if index < 900)
    n_text = len(sampled) - n_alpaca
    assert n_text > 0
    assert f"alpaca: {n_alpaca} rows" in message
    assert f"text: {n_text} rows" in message
    assert "mixes formats" in message
    first_text_line = next(index for index in sampled if index >= 900) + 1
    assert f"line {first_text_line}" in message
    assert "line 1" in message  # an alpaca example
    assert "format=<name>" in message
    assert caught.value.path == str(path)


def test_only_the_head_of_the_file_fitting_is_not_enough() -> None:
    rows: list[dict[str, Any]] = [{"text": f"row {i}"} for i in range(999)] + [
        {"prompt": "p", "completion": "c"}
    ]
    with pytest.raises(DatasetFormatError, match=r"prompt_completion: 1 rows \(e\.g\. row 999\)"):
        detect_format(rows, len(rows), FormatOptions())


def test_detection_reads_rows_through_a_callable_without_touching_the_rest() -> None:
    seen: list[int] = []

    def row(index: int) -> Mapping[str, Any]:
        seen.append(index)
        return {"text": f"row {index}"}

    detection = detect_format(row, 10_000, FormatOptions())
    assert detection.format == "text"
    assert detection.sampled_rows == len(seen) == SAMPLE_SIZE
    assert detection.total_rows == 10_000
    assert seen[-1] == 9_999
    assert "detected on 64 of 10000 rows" in detection.describe()


# -------------------------------------------------------------------------------------- failures


def test_row_fitting_no_format_names_its_fields() -> None:
    rows = [{"text": "fine"}, {"title": "x", "body": "y"}]
    with pytest.raises(DatasetFormatError) as caught:
        detect_format(rows, 2, FormatOptions(), source="data.jsonl", row_label=lambda i: f"line {i + 1}")
    message = str(caught.value)
    assert "data.jsonl, line 2 fits no known format" in message
    assert "'title'" in message
    assert "'body'" in message
    assert "columns=" in message


def test_no_rows_is_a_format_error() -> None:
    with pytest.raises(DatasetFormatError, match="has no rows"):
        detect_format([], 0, FormatOptions())


class TieDetector:
    """A test detector that claims ``prompt``/``completion`` rows exactly as strongly as the built-in does."""

    name = "tie_for_tests"
    canonical = "prompt_completion"

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> FormatMatch:
        """The same score as ``prompt_completion``."""
        return get_format("prompt_completion").match(row, options)

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> dict[str, Any]:
        """Swap nothing: prompt and completion as they are."""
        return {"prompt": row["prompt"], "completion": row["completion"]}


@pytest.fixture()
def tie_detector() -> Iterator[TieDetector]:
    detector = TieDetector()
    register_format(detector, provider="tests")
    try:
        yield detector
    finally:
        unregister_format(detector.name)
    assert detector.name not in format_names()


def test_a_tie_lists_the_candidates_and_how_to_force_one(tie_detector: TieDetector) -> None:
    rows = [{"prompt": "p", "completion": "c"}]
    with pytest.raises(DatasetFormatError) as caught:
        detect_format(rows, 1, FormatOptions(), source="pc.jsonl")
    message = str(caught.value)
    assert "several formats equally well" in message
    assert "'prompt_completion'" in message
    assert "'tie_for_tests'" in message
    assert "format=<name>" in message
    # Forcing either candidate resolves the tie.
    assert detect_format(rows, 1, FormatOptions(), forced="tie_for_tests").format == "tie_for_tests"
    spec = DatasetSpec(rows, format="prompt_completion")
    assert convert_rows(load_rows(spec), spec, FormatOptions()).report.format == "prompt_completion"


def test_a_registered_detector_that_is_more_specific_wins(tie_detector: TieDetector) -> None:
    rows = [{"text": "only text"}]
    assert detect_format(rows, 1, FormatOptions()).format == "text"


# -------------------------------------------------------------------------------------- forcing


def test_forced_format_skips_detection_and_is_used_for_conversion() -> None:
    rows = [{"instruction": "Say hi.", "output": "Hi", "text": "a text column too"}]
    assert detect_format(rows, 1, FormatOptions()).format == "alpaca"
    forced = detect_format(rows, 1, FormatOptions(), forced="text")
    assert (forced.format, forced.canonical, forced.forced) == ("text", "text", True)
    assert "chosen by the recipe" in forced.describe()
    spec = DatasetSpec(rows, format="text")
    prepared = convert_rows(load_rows(spec), spec, FormatOptions())
    assert prepared.rows == [{"text": "a text column too"}]
    assert prepared.report.format == "text"


def test_forcing_a_format_that_does_not_exist_lists_the_real_ones() -> None:
    with pytest.raises(DatasetFormatError) as caught:
        detect_format([{"text": "x"}], 1, FormatOptions(), forced="alpacca", source="d.jsonl")
    message = str(caught.value)
    assert "'alpacca'" in message
    assert "format='auto'" in message
    assert caught.value.path == "d.jsonl"
    for name in BUILTIN_NAMES:
        assert repr(name) in message
    spec = DatasetSpec([{"text": "x"}], format="alpacca")  # a spec made without the recipe's own check
    with pytest.raises(DatasetFormatError, match="no dataset format named 'alpacca'"):
        convert_rows(load_rows(spec), spec, FormatOptions())


def test_forced_format_still_checks_every_row() -> None:
    spec = DatasetSpec([{"text": "fine"}, {"body": "no text"}], format="text")
    with pytest.raises(RowError, match=re.escape("row 1, field 'text'")):
        convert_rows(load_rows(spec), spec, FormatOptions())


# -------------------------------------------------------------------------------------- bad rows


def test_rows_that_are_not_objects_are_left_to_conversion() -> None:
    rows: list[Any] = [{"text": "a"}, ["not", "an", "object"], {"text": "b"}, None]
    detection = detect_format(rows, len(rows), FormatOptions())
    assert (detection.format, detection.sampled_rows, detection.total_rows) == ("text", 2, 4)


def test_no_object_row_among_the_sampled_ones_is_a_format_error() -> None:
    with pytest.raises(
        DatasetFormatError, match=r"none of the 2 sampled rows is an object .*row 0 is a list"
    ):
        detect_format([[1], "x"], 2, FormatOptions())


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "Hi"}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages"),
        ({"text": None}, "text"),
        ({"text": 3}, "text"),
        ({"messages": None, "text": "plain text wins over a broken messages field"}, "text"),
        ({"messages": [{"role": "user", "content": "x"}], "text": None}, "messages"),
        ({"instruction": "x", "output": "y", "text": None}, "alpaca"),
    ],
)
def test_a_format_field_with_a_bad_value_still_names_its_format(row: dict[str, Any], expected: str) -> None:
    """So that conversion reports the bad value as a RowError (skippable), not a whole-dataset failure."""
    assert detect_format([row], 1, FormatOptions()).format == expected


def test_formats_import_and_detection_load_no_heavy_libraries() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from trl_sft_kit.formats import FormatOptions, detect_format, get_format
        row = {"instruction": "Say hi.", "output": "Hi"}
        name = detect_format([row], 1, FormatOptions()).format
        get_format(name).convert(row, FormatOptions(chat=True))
        heavy = ("torch", "transformers", "trl", "datasets", "pyarrow")
        print(json.dumps([module for module in heavy if module in sys.modules]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == []


# -------------------------------------------------------------------------------------- the report


def test_describe_says_which_format_why_on_how_many_rows_and_what_came_second() -> None:
    rows = [{"instruction": "Add.", "input": "1 2", "output": "3"}] * 3 + [
        {"instruction": "Hi.", "output": "Hi"}
    ]
    detection = detect_format(rows, len(rows), FormatOptions())
    text = detection.describe()
    assert text.startswith(
        "format 'alpaca' (detected on 4 of 4 rows): has 'instruction' and 'output' fields."
    )
    # input/output also fits instruction_response, less specifically: named with its reason and count.
    assert detection.runners_up[0].format == "instruction_response"
    assert detection.runners_up[0].rows == 3
    assert (
        "Also fitting, less specifically: 'instruction_response' on 3 rows (has 'input' and 'output'" in text
    )


def test_describe_gives_each_reason_with_its_count_and_the_rows_that_are_not_objects() -> None:
    rows: list[Any] = [{"question": "Q?", "answer": "A"}] * 3 + [{"query": "Q?", "response": "A"}, [1, 2]]
    text = detect_format(rows, len(rows), FormatOptions()).describe()
    assert "has 'question' and 'answer' fields (3 of 4 rows)" in text
    assert "has 'query' and 'response' fields (1 of 4 rows)" in text
    assert "1 sampled rows are not objects" in text


def test_the_report_summary_carries_the_detection() -> None:
    rows = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}] * 100
    spec = DatasetSpec(rows)
    summary = convert_rows(load_rows(spec), spec, FormatOptions()).report.summary()
    assert "format 'sharegpt' (detected on 64 of 100 rows, sampled from first to last)" in summary
    assert "'conversations' is a list of {from, value} turns" in summary
    assert "rows: 100 read, 100 kept as 'messages' rows, 0 skipped" in summary


# -------------------------------------------------------------------------------------- preference data


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green."},
        {"chosen": "Q: Sky? A: Blue.", "rejected": "Q: Sky? A: Green."},
        {"prompt": "Sky?", "completion": "Blue.", "label": True},
    ],
)
def test_auto_refuses_preference_data_and_says_how_to_train_on_the_chosen_answers(
    row: dict[str, Any],
) -> None:
    spec = DatasetSpec([row, row], on_bad_rows="skip")
    with pytest.raises(DatasetFormatError) as caught:
        convert_rows(load_rows(spec), spec, FormatOptions())
    message = str(caught.value)
    assert "preference data, not SFT data" in message
    assert "format='preference_chosen'" in message
    assert "on 2 sampled rows" in message
    forced = DatasetSpec([row, row], format="preference_chosen")
    assert convert_rows(load_rows(forced), forced, FormatOptions()).report.rows_kept == 2


def test_a_boolean_label_makes_prompt_completion_rows_kto_but_other_labels_do_not() -> None:
    assert detect_format([{"prompt": "p", "completion": "c", "label": "pos"}], 1, FormatOptions()).format == (
        "prompt_completion"
    )


# -------------------------------------------------------------------------------------- plug-ins that fail


class FaultyFormat:
    """A test detector for ``{"faulty": ...}`` rows whose match and convert fail as ``mode`` says."""

    name = "faulty_for_tests"
    canonical = "prompt_completion"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def match(self, row: Mapping[str, Any], options: FormatOptions) -> Any:
        """Rows with a ``faulty`` field; or a crash, or not a FormatMatch."""
        if self.mode == "match crashes":
            return row["faulty"]["missing"]
        if self.mode == "match returns a number":
            return 0.9
        return FormatMatch.yes(0.9, "has 'faulty'") if "faulty" in row else FormatMatch.no("no 'faulty'")

    def convert(self, row: Mapping[str, Any], options: FormatOptions) -> Any:
        """``faulty`` as the prompt, or one of the mistakes a plug-in can make."""
        if self.mode == "convert crashes":
            return {"prompt": row["question"], "completion": "x"}
        if self.mode == "convert returns text":
            return {"text": row["faulty"]}
        if self.mode == "convert returns an empty completion":
            return {"prompt": row["faulty"], "completion": " "}
        return {"prompt": row["faulty"], "completion": "fine", "id": 3}


@pytest.fixture()
def faulty() -> Iterator[Any]:
    def install(mode: str) -> FaultyFormat:
        detector = FaultyFormat(mode)
        register_format(detector, provider="faulty-plugin 0.1", replace=True)
        return detector

    yield install
    unregister_format(FaultyFormat.name)


@pytest.mark.parametrize(
    ("mode", "method", "cause"),
    [
        ("match crashes", "match", "TypeError"),
        ("convert crashes", "convert", "KeyError"),
    ],
)
def test_a_plugin_crash_is_a_plugin_error_naming_the_plugin_and_the_row(
    faulty: Any, mode: str, method: str, cause: str
) -> None:
    faulty(mode)
    spec = DatasetSpec([{"faulty": "Q"}, {"faulty": "Q2"}])
    with pytest.raises(PluginError) as caught:
        convert_rows(load_rows(spec), spec, FormatOptions())
    message = str(caught.value)
    assert (caught.value.name, caught.value.provider) == ("faulty_for_tests", "faulty-plugin 0.1")
    assert f"failed in {method}() on inline rows, row 0 ({cause}" in message
    assert "bug of the detector" in message
    assert isinstance(caught.value.__cause__, (KeyError, TypeError))


def test_a_plugin_returning_something_else_than_a_match_is_named(faulty: Any) -> None:
    faulty("match returns a number")
    with pytest.raises(PluginError, match="returned float from match\\(\\) on the dataset, row 0"):
        detect_format([{"text": "x"}], 1, FormatOptions())


def test_a_plugin_row_that_is_not_canonical_is_a_plugin_error(faulty: Any) -> None:
    faulty("convert returns text")
    spec = DatasetSpec([{"faulty": "Q"}])
    with pytest.raises(
        PluginError, match=r"converted inline rows, row 0 to \['text'\]; a 'prompt_completion' row"
    ):
        convert_rows(load_rows(spec), spec, FormatOptions())


def test_a_plugin_row_is_checked_like_any_canonical_row(faulty: Any) -> None:
    faulty("convert returns an empty completion")
    spec = DatasetSpec([{"faulty": "Q"}, {"faulty": "Q2"}], on_bad_rows="skip")
    with pytest.raises(DatasetError) as caught:
        convert_rows(load_rows(spec), spec, FormatOptions())
    assert "every one of the 2 rows was bad" in str(caught.value)
    assert "in the 'prompt_completion' row that format 'faulty_for_tests' made of it" in str(caught.value)


def test_a_plugin_row_keeps_only_canonical_fields(faulty: Any) -> None:
    faulty("fine")
    spec = DatasetSpec([{"faulty": "Q"}])
    prepared = convert_rows(load_rows(spec), spec, FormatOptions())
    assert prepared.rows == [{"prompt": "Q", "completion": "fine"}]
